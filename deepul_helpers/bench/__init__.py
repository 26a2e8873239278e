"""``deepul bench FAMILY``: run a family's benchmark, print its table, write JSON, the table as PNG and
the plots of ``plot.bench_figures`` (``FAMILY_gap.png``, ``FAMILY_bits_<data set>.png``, ``FAMILY_sampling_time.png``).

A benchmark is a module ``deepul_helpers.bench.<family>`` with
``run(quick: bool, device: str) -> list[dict]``: one dict per row, measured values only.
A model family's rows (a family with a folder ``models/<family>/``) follow the one row schema of
``bench/schema.py`` and are validated before they are written; other benchmarks (``grading``)
have rows of their own. A benchmark whose ``run`` takes ``out`` (the round-up: its samples) gets the folder
it writes to. Every row written gets the run's metadata (``schema.RUN_FIELDS``: ``quick``, true
for ``--quick`` or ``DEEPUL_QUICK=1``). PyTorch runs on ``config.threads()`` threads (one unless
``DEEPUL_THREADS`` says otherwise).

Where results go and are read back (:func:`bench_dir`): ``--out DIR`` if given, else ``out/bench`` in the
course folder (``autograde.course.root``'s rule: the current folder or the first one above it that is a
course, or ``--course`` / ``$DEEPUL_COURSE``), else ``out/bench`` in the current folder. So ``deepul bench
roundup`` run anywhere in a checkout and lecture 06 opened from ``lectures/`` meet in the same folder.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path


def available() -> list[str]:
    """The benchmarks: every module of this package but the schema and the round-up's claims."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.name.startswith("_") and m.name not in ("schema", "claims"))


def bench_dir(out: str | Path | None = None) -> Path:
    """The benchmark folder by the rule of the module docstring (not created here)."""
    if out is not None:
        return Path(out)
    from deepul_helpers.autograde import course

    found = course.root_or_none()
    return (found if found is not None else Path.cwd()) / "out" / "bench"


def model_families() -> list[str]:
    """The model families (folders of ``deepul_helpers.models``): their benchmarks write schema rows."""
    from deepul_helpers import models

    return sorted(m.name for m in pkgutil.iter_modules(models.__path__) if m.ispkg and not m.name.startswith("_"))


def add_arguments(parser) -> None:
    parser.add_argument("family", help="which benchmark: " + ", ".join(available()))
    parser.add_argument("--quick", action="store_true", help="a few iterations only (checks that it runs)")
    parser.add_argument("--out", default=None, help="folder for FAMILY.json and FAMILY.png (default: out/bench "
                        "in the course folder found from the current one, else in the current folder)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu or cuda")
    parser.add_argument("--workers", type=int, default=None, help="processes for a benchmark's independent runs "
                        "(default: $DEEPUL_WORKERS, else the CPU cores; 1: one run at a time)")


def format_table(rows: list[dict]) -> str:
    """Rows as a fixed-width text table (columns in first-seen order)."""
    if not rows:
        return "(no rows)"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
        return str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def run_benchmark(family: str, quick: bool = False, out: str | Path | None = None, device: str = "auto"):
    known = available()
    if family not in known:
        raise SystemExit(f"deepul bench: unknown benchmark {family!r}; known: {', '.join(known)}")
    from deepul_helpers import config

    config.use_threads()
    module = importlib.import_module(f"{__name__}.{family}")
    quick = config.is_quick(quick)
    out = bench_dir(out)
    takes_out = "out" in inspect.signature(module.run).parameters
    rows = module.run(quick=quick, device=device, **({"out": out} if takes_out else {}))
    for row in rows:  # the run's metadata (schema.RUN_FIELDS) in every row: the JSON says how it was made
        row["quick"] = quick
    if family in model_families():
        from deepul_helpers.bench.schema import validate_rows

        validate_rows(rows, family)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{family}.json"
    json_path.write_text(json.dumps(rows, indent=2, default=float) + "\n")
    from deepul_helpers import plot

    png_path = out / f"{family}.png"
    plot.table(rows, title=f"deepul bench {family}" + (" (quick)" if quick else ""), save_to=png_path)
    for name, fig in plot.bench_figures(rows, title_prefix=family):  # what the rows measure, as plots
        fig.savefig(out / f"{family}_{name}.png", dpi=110, bbox_inches="tight")
        plot.close(fig)
    return rows, json_path, png_path


def main(args) -> int:
    if args.workers is not None:
        import os

        from deepul_helpers import config

        if args.workers < 1:
            raise SystemExit(f"deepul bench: --workers must be at least 1, got {args.workers}")
        os.environ[config.WORKERS_ENV] = str(args.workers)
    rows, json_path, png_path = run_benchmark(args.family, quick=args.quick, out=args.out, device=args.device)
    print(format_table(rows))
    print(f"\nwrote {json_path} and {png_path}")
    return 0
