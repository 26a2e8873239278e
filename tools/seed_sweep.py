"""Seed sweep of every homework verdict: is any sub-check's outcome for a correct implementation a lottery
on the hidden seed?

For each assignment (``grading/verdicts/<assignment>.py``) and each variant (the reference solution, and the
alternative correct implementations of ``tests/fairness_alternatives.py``: float32, written differently,
tuned differently), every question is graded in this process (``verdict.subchecks``: probe, the sandbox's
transport, judge) at many hidden seeds, and each sub-check's pass rate is counted:

- components (exact parts, the training functions stubbed out): seeds 0..N-1 and the real hidden seed;
- training functions in quick mode (what the probes call): seeds 0..M-1 and the real hidden seed.

A correct implementation must pass every sub-check at every seed. Run from the repository root::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python tools/seed_sweep.py --seeds 20 --fit-seeds 8
    .venv/bin/python tools/seed_sweep.py --only hw2_flows --fit-seeds 0      # components of one homework

It prints one table row per (assignment, variant, sub-check) and writes them as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fairness_alternatives import FIT_NAMES, VARIANTS, namespace  # noqa: E402

from deepul_helpers.autograde.grade import load_verdict  # noqa: E402
from deepul_helpers.autograde.verdict import subchecks  # noqa: E402

ASSIGNMENTS = ["hw1_autoregressive", "hw2_flows", "hw3_latent_variable", "hw4_implicit", "hw5_self_supervised"]


def _unfit(*args, **kwargs):
    raise NotImplementedError("stubbed out by the seed sweep")


def _label(template: str) -> str:
    """A sub-check's name: its message without the measured values some messages show."""
    template = re.sub(r" \(got [^)]*\)", "", template)
    return template.replace(": {why}", "").replace(" {why}", "").replace("{why}", "")[:90] or "(count of calls)"


def sweep(assignment: str, variant: str, seeds: list[int], fit_seeds: list[int]) -> list[dict]:
    """Rows ``{assignment, variant, question, sub_check, kind, seeds, passed, failed_seeds}``."""
    verdict = load_verdict(REPO / "grading" / "verdicts" / f"{assignment}.py")
    ns = namespace(assignment, variant)
    counts: dict = defaultdict(lambda: {"passed": 0, "tried": 0, "failed": []})
    kinds = {}
    for q in verdict.QUESTIONS:
        fits = [r for r in q.requires if r in FIT_NAMES]
        parts = (("component", {**ns, **{r: _unfit for r in fits}}, seeds, fits),
                 ("quick-mode training", ns, fit_seeds if fits else [], []))
        for kind, space, kind_seeds, stubbed in parts:
            for seed in [*kind_seeds, verdict.HIDDEN_SEED] if kind_seeds else []:
                _, _, done = subchecks(q, space, seed)
                seen: dict = defaultdict(int)
                for template, _points, ok in done:
                    seen[_label(template)] += 1
                    key = (q.grade_id, _label(template), seen[_label(template)])  # one label, several sub-checks
                    if any(template.startswith(s) for s in stubbed):
                        continue  # a stubbed training function's own sub-checks (or its 'raised')
                    if kinds.get(key, kind) != kind:
                        continue  # a component's sub-check, counted over the components' seeds already
                    kinds.setdefault(key, kind)
                    c = counts[key]
                    c["tried"] += 1
                    c["passed"] += ok
                    if not ok:
                        c["failed"].append(seed)
    return [{"assignment": assignment, "variant": variant, "question": k[0], "sub_check": _label(k[1]),
             "kind": kinds[k], "seeds": c["tried"], "passed": c["passed"], "failed_seeds": c["failed"]}
            for k, c in counts.items()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20, help="hidden seeds 0..N-1 for the components (default 20)")
    p.add_argument("--fit-seeds", type=int, default=8, help="hidden seeds 0..M-1 for quick-mode training (default 8)")
    p.add_argument("--only", nargs="*", default=ASSIGNMENTS, help="assignments (default: all five)")
    p.add_argument("--variants", nargs="*", default=None, help="variants (default: every one of the assignment)")
    p.add_argument("--out", default="out/seed_sweep.json", help="JSON rows (default out/seed_sweep.json)")
    args = p.parse_args(argv)
    rows = []
    for a in args.only:
        for v in VARIANTS[a]:
            if args.variants and v not in args.variants:
                continue
            t0 = time.process_time()
            new = sweep(a, v, list(range(args.seeds)), list(range(args.fit_seeds)))
            rows += new
            bad = [r for r in new if r["passed"] < r["seeds"]]
            print(f"# {a} / {v}: {len(new)} sub-checks, {len(bad)} failing at some seed, "
                  f"{time.process_time() - t0:.0f} CPU s", flush=True)
            for r in new:
                mark = "" if r["passed"] == r["seeds"] else f"  FAILED at {r['failed_seeds'][:8]}"
                print(f"{r['question']:9} {r['kind'][:9]:9} {r['passed']:3}/{r['seeds']:<3} {r['sub_check']}{mark}",
                      flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}: {sum(r['passed'] < r['seeds'] for r in rows)} of {len(rows)} rows fail at some seed")
    return int(any(r["passed"] < r["seeds"] for r in rows))


if __name__ == "__main__":
    raise SystemExit(main())
