"""``make site``: the course as a static website under ``out/site/`` (Sphinx + MyST-NB).

Stages the pages under ``out/site-build/src/`` (nothing there is committed), then runs
``sphinx-build`` with ``site/conf.py``:

- ``index``: the README's introduction and course map, with links to the pages below;
- ``lectures/NN_*``: every ``lectures/NN_*.ipynb`` (found by glob), **executed** by MyST-NB
  in quick mode (``DEEPUL_QUICK=1``), or in full mode with ``--full``. Executions are cached
  by MyST-NB (jupyter-cache) under ``out/site-build/cache/<mode>-<hash>``, where the hash
  covers the package's source, so a rebuild re-executes only what changed;
- the site's own pages ``site/pages/*`` (e.g. the data sets), executed like the lectures;
- ``homeworks/hwN_*``: the released notebooks ``homeworks/*/*.ipynb`` (never ``solutions/``),
  shown as released, with a download link;
- ``benchmarks/<family>``: every ``out/bench/<family>.json`` written by ``deepul bench``,
  as an HTML table and the plots of ``plot.bench_figures``;
- ``grading``: ``grading/README.md``; ``execution``: MyST-NB's table of execution times.

Maths is typeset by the MathJax copy that the ``sphinx-mathjax-offline`` package ships: no
page loads anything from another host.

    python site/build.py [--full] [--execute none|PATTERN] [--bench DIR] [--out DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"


def _write(path: Path, text: str | bytes) -> None:
    """Write only when the content changes (Sphinx then re-reads only changed pages)."""
    data = text.encode() if isinstance(text, str) else text
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def lectures(root: Path = ROOT) -> list[Path]:
    return sorted((root / "lectures").glob("[0-9][0-9]_*.ipynb"))


def pages(root: Path = ROOT) -> list[Path]:
    """The site's own pages (``site/pages/*.ipynb``, ``*.md``), e.g. the data sets; notebooks are executed."""
    return sorted(p for p in (root / "site" / "pages").glob("*") if p.suffix in (".ipynb", ".md"))


def homeworks(root: Path = ROOT) -> list[Path]:
    """Released homework notebooks, one folder each (``homeworks/hwN_family/hwN.ipynb``)."""
    return sorted(p for p in (root / "homeworks").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def package_hash(root: Path = ROOT) -> str:
    """Hash of the package's source: executions cached under it are redone when the package changes."""
    h = hashlib.sha256()
    for p in sorted((root / "deepul_helpers").rglob("*")):
        if p.suffix in (".py", ".json", ".txt") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


# --- the home page -----------------------------------------------------------------------------

def _section(text: str, heading: str) -> str:
    """The body of the README's ``## heading`` section."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    return m.group(1).strip() if m else ""


def _intro(text: str) -> str:
    """The README's paragraphs between its title and its first section."""
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    return body.split("\n## ", 1)[0].strip()


def course_map(readme: str, lecture_docs: dict[str, str], homework_docs: dict[str, str]) -> str:
    """The README's course map with its lecture and homework paths turned into links to their pages.

    ``lecture_docs``: repository path -> page; a row whose lecture cell does not name an existing
    lecture (e.g. "planned") gets a link to the lecture whose number ``NN_`` matches the row's ``#``.
    """
    out = []
    for line in _section(readme, "Course map").splitlines():
        cells = line.strip().strip("|").split("|") if line.lstrip().startswith("|") else None
        if not cells or set(line.strip()) <= set("|-: "):
            out.append(line)
            continue
        cells = [c.strip() for c in cells]
        new = []
        for c in cells:
            path = c.strip("`")
            if path in lecture_docs:
                c = f"[]({lecture_docs[path]})"
            elif path.rstrip("/") in homework_docs:
                c = f"[]({homework_docs[path.rstrip('/')]})"
            new.append(c)
        number = new[0]
        if number.isdigit() and len(new) > 2 and not new[2].startswith("["):
            for path, doc in lecture_docs.items():
                if Path(path).name.startswith(f"{int(number):02d}_"):
                    new[2] = f"[]({doc})"
        out.append("| " + " | ".join(new) + " |")
    return "\n".join(out)


def index_page(readme: str, lecture_docs, homework_docs, page_docs, bench_docs, mode: str) -> str:
    def toc(caption, docs):
        if not docs:
            return ""
        return "\n".join(["```{toctree}", f":caption: {caption}", ":maxdepth: 1", "", *docs, "```", ""])

    how = ("Every lecture on this site was executed by `make site` in **quick mode** (a few iterations "
           "per training run, so figures are rough); `make site FULL=1` builds it in full mode."
           if mode == "quick" else
           "Every lecture on this site was executed by `make site FULL=1` in **full mode**.")
    return "\n".join([
        "# Deep Unsupervised Learning", "",
        _intro(readme), "",
        "## Course map", "",
        course_map(readme, {k: v + ".ipynb" for k, v in lecture_docs.items()},
                   {k: v + ".ipynb" for k, v in homework_docs.items()}), "",
        how + " The [execution times](execution.md) page lists how long each took.", "",
        "## Running it yourself", "",
        _section(readme, "Quick start"), "",
        toc("Lectures", list(lecture_docs.values())),
        toc("Homework", list(homework_docs.values())),
        toc("Reference", [*page_docs, *(["benchmarks/index"] if bench_docs else [])]),
        toc("Instructors", ["grading", "execution"]),
    ])


# --- homework, benchmarks ----------------------------------------------------------------------

def homework_notebook(src: Path, rel_download: str) -> str:
    """The released notebook with a note after its title: released version, download link, how to check."""
    nb = json.loads(src.read_text())
    note = {
        "cell_type": "markdown", "metadata": {}, "id": "deepul-site-note",
        "source": [
            "```{note}\n",
            "This page shows the **released** notebook, as students receive it (no solutions, no outputs). ",
            f"Download it: {{download}}`{src.name} <{rel_download}>`, open it in JupyterLab (`make lab`), ",
            f"and check your answers with `deepul validate {src.relative_to(ROOT)}` before you submit.\n",
            "```\n",
        ],
    }
    cells = nb["cells"]
    at = 1 if cells and cells[0]["cell_type"] == "markdown" else 0
    nb["cells"] = cells[:at] + [note] + cells[at:]
    return json.dumps(nb, indent=1)


def _cell(v) -> str:
    if v is None:
        return "–"  # an en dash: a plain "-" would start a list inside the table cell
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v).replace("|", "/")


def bench_page(family: str, json_path: Path, fig_dir: Path) -> str:
    """A family's benchmark page: plots of what it measures, then every row as an HTML table."""
    from deepul_helpers import plot

    rows = json.loads(json_path.read_text())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(json_path.stat().st_mtime))
    folder = json_path.parent.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path.parent
    lines = [f"# Benchmark: {family}", "",
             f"Rows written by `deepul bench {family} --out {folder}` on {when}: measured values only; "
             "timings are wall-clock seconds on the machine that ran it (possibly shared). A run with `--quick` "
             "trains a few iterations only: see `epochs` and `iterations`.", ""]
    for name, fig in plot.bench_figures(rows, title_prefix=family):
        fname = f"{family}_{name}.png"
        fig.savefig(fig_dir / fname, dpi=110, bbox_inches="tight")
        plot.close(fig)
        lines += [f"```{{figure}} {fname}", f":alt: {family}: {name.replace('_', ' ')}", "", "```", ""]
    from deepul_helpers.bench.schema import FIELDS, OPTIONAL_FIELDS

    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns and any(q.get(k) is not None for q in rows)]
    same = {c: rows[0].get(c) for c in columns if len(rows) > 1 and all(r.get(c) == rows[0].get(c) for r in rows)}
    columns = [c for c in columns if c not in same]
    lines += ["## Table", "", "Columns that hold no value in any row are left out"
              + ("; the same in every row: " + ", ".join(f"`{c}` = {_cell(v)}" for c, v in same.items()) if same
                 else "") + ".", "",
              "```{list-table}", ":header-rows: 1", ":class: deepul-bench", ""]
    header = {c: c.replace("_", "_\u200b") for c in columns}  # long names may break after an underscore
    for r in [header, *rows]:
        lines.append(f"* - {_cell(r.get(columns[0]))}")
        lines += [f"  - {_cell(r.get(c))}" for c in columns[1:]]
    lines += ["```", "", "## Columns", ""]
    about = {**FIELDS, **OPTIONAL_FIELDS}
    lines += [f"- `{c}`: {about[c]}" for c in [*same, *columns] if c in about]
    return "\n".join(lines + [""])


# --- the build ---------------------------------------------------------------------------------

def stage(src: Path, bench_dir: Path, mode: str) -> dict:
    """Write every page under ``src``; returns what conf.py needs (which notebooks not to execute)."""
    readme = (ROOT / "README.md").read_text()
    lecture_docs = {}
    for p in lectures():
        _write(src / "lectures" / p.name, p.read_bytes())
        lecture_docs[str(p.relative_to(ROOT))] = f"lectures/{p.stem}"
    page_docs = []
    for p in pages():
        _write(src / p.name, p.read_bytes())
        page_docs.append(p.stem)
    homework_docs = {}
    for p in homeworks():
        folder = p.parent.name
        _write(src / "_downloads" / folder / p.name, p.read_bytes())
        _write(src / "homeworks" / f"{folder}.ipynb",
               homework_notebook(p, f"../_downloads/{folder}/{p.name}"))
        homework_docs[str(p.parent.relative_to(ROOT))] = f"homeworks/{folder}"
    bench_docs = []
    for j in sorted(bench_dir.glob("*.json")) if bench_dir.is_dir() else []:
        (src / "benchmarks").mkdir(parents=True, exist_ok=True)
        _write(src / "benchmarks" / f"{j.stem}.md", bench_page(j.stem, j, src / "benchmarks"))
        bench_docs.append(j.stem)
    if bench_docs:
        _write(src / "benchmarks" / "index.md", "\n".join([
            "# Benchmarks", "",
            "Each family's `deepul bench FAMILY --out out/bench` writes one row per model and data set; "
            "`make site` shows every family that has been run.", "",
            "```{toctree}", ":maxdepth: 1", "", *bench_docs, "```", ""]))
    grading = (ROOT / "grading" / "README.md").read_text()
    _write(src / "grading.md", grading)
    _write(src / "execution.md", "\n".join([
        "# Execution times", "",
        f"How long each notebook took to execute for this site ({mode} mode; wall-clock seconds on the "
        "machine that built it, which may have been shared). MyST-NB keeps each execution in its cache "
        "(`out/site-build/cache/`) and runs a notebook again only when its code or the package's source "
        "changed: *Modified* says when it ran.", "",
        "```{nb-exec-table}", "```", ""]))
    _write(src / "index.md", index_page(readme, lecture_docs, homework_docs, page_docs, bench_docs, mode))
    # pages of an earlier build whose source is gone
    keep = ({f"{d}.ipynb" for d in [*lecture_docs.values(), *homework_docs.values()]}
            | {f"benchmarks/{b}.md" for b in bench_docs} | {"benchmarks/index.md"})
    for sub in ("lectures", "homeworks", "benchmarks"):
        for p in (src / sub).glob("*.*") if (src / sub).is_dir() else []:
            if p.suffix in (".ipynb", ".md") and str(p.relative_to(src)) not in keep:
                p.unlink()
    return {"executable": [*lecture_docs.values(), *[d for d in page_docs if (src / f"{d}.ipynb").exists()]],
            "wide_pages": [f"benchmarks/{b}" for b in bench_docs]}


def build(out: Path, work: Path, full: bool = False, execute: str = "*", bench_dir: Path | None = None,
          quiet: bool = False) -> float:
    """Stage and build the site; returns the wall-clock seconds it took."""
    t0 = time.perf_counter()
    mode = "full" if full else "quick"
    src = work / "src"
    staged = stage(src, bench_dir if bench_dir is not None else ROOT / "out" / "bench", mode)
    no_exec = ["homeworks/*"] if execute != "none" else ["**"]
    if execute not in ("none", "*"):
        no_exec += [f"{d}.ipynb" for d in staged["executable"] if not fnmatch.fnmatch(Path(d).name + ".ipynb", execute)]
    settings = {
        "mode": mode,
        "cache": str(work / "cache" / f"{mode}-{package_hash()}"),
        "no_execute": no_exec,
        "wide_pages": staged["wide_pages"],
    }
    for old in (work / "cache").glob(f"{mode}-*") if (work / "cache").is_dir() else []:
        if str(old) != settings["cache"]:
            shutil.rmtree(old, ignore_errors=True)
    settings_path = work / "settings.json"
    _write(settings_path, json.dumps(settings, indent=1))
    env = dict(os.environ, DEEPUL_SITE_SETTINGS=str(settings_path), PYTHONPATH=str(ROOT))
    env.pop("MPLBACKEND", None)  # the kernel's inline backend puts figures into the page
    env.pop("NBGRADER_EXECUTION", None)
    if full:
        env.pop("DEEPUL_QUICK", None)
    else:
        env["DEEPUL_QUICK"] = "1"
    # -E: every page read again (executions come from the cache), so that a switch between quick and full
    # mode, or a changed package, never leaves a page of the other build behind
    cmd = [sys.executable, "-m", "sphinx", "-E", "-b", "html", "-c", str(SITE), "-d", str(work / "doctrees"),
           str(src), str(out)]
    if quiet:
        cmd.insert(3, "-q")
    subprocess.run(cmd, env=env, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="execute the lectures in full mode (default: quick mode)")
    ap.add_argument("--execute", default="*",
                    help="which notebooks to execute: a file-name pattern (default: all), or 'none' "
                         "(every notebook shown as committed, without outputs)")
    ap.add_argument("--bench", default=str(ROOT / "out" / "bench"), help="folder of deepul bench JSON files")
    ap.add_argument("--out", default=str(ROOT / "out" / "site"), help="where the HTML goes")
    ap.add_argument("--work", default=str(ROOT / "out" / "site-build"), help="staged pages, caches")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors from Sphinx")
    args = ap.parse_args(argv)
    try:
        seconds = build(Path(args.out), Path(args.work), full=args.full, execute=args.execute,
                        bench_dir=Path(args.bench), quiet=args.quiet)
    except subprocess.CalledProcessError as e:
        print(f"make site: sphinx-build failed (exit {e.returncode}); its messages are above", file=sys.stderr)
        return 1
    print(f"site: {Path(args.out) / 'index.html'} ({'full' if args.full else 'quick'} mode, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
