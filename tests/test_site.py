"""The course website (``make site``: site/build.py) opened in headless Chromium with the network blocked.

What the browser test covers: the site built in quick mode from this checkout, with the data-set page
executed (MyST-NB, a fresh kernel; ~15 s) and a benchmark page made from rows written here; every
page reachable from the home page loads from the local server only, with no failed request and no
console error; every image loads; every maths element is typeset by the bundled MathJax and no raw
``$...$`` is left; every link and anchor between pages resolves; every lecture and released homework
has its page, linked from the course map; no solution text reaches a homework page.

What it does not cover: the lectures' executed outputs (executing every lecture costs minutes; here
they are shown as committed, their maths and links checked). ``make site`` followed by
``python site/check.py`` runs the same browser check on the fully executed site.

Skipped, with the reason, where Chromium or its driver is not installed or does not start.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.xdist_group("site")


def _load(name: str):
    """site/<name>.py as a module (the folder name ``site`` is taken by Python's own module)."""
    spec = importlib.util.spec_from_file_location(f"deepul_site_{name}", REPO / "site" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def check():
    check = _load("check")
    reason = check.browser_problem()
    if reason:
        pytest.skip(reason)
    return check


def _bench_rows():
    """Rows of the benchmark schema, for the rendering test (made up here: the values are not results)."""
    from deepul_helpers.bench.schema import make_row

    return [make_row("rendering", model, dataset, test_nats_per_dim=nll, nll_kind="exact", s_per_1000_samples=s,
                     params=100)
            for dataset, model, nll, s in [("1d_a", "Histogram", 2.70, 0.01), ("1d_a", "LogisticMix(4)", 2.66, 0.02),
                                           ("digits", "MADE", 1.20, 3.0), ("digits", "PixelCNN", 1.05, 20.0)]]


def test_site_in_a_browser_with_the_network_blocked(check, tmp_path):
    build = _load("build")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "rendering.json").write_text(json.dumps(_bench_rows()))
    out = tmp_path / "site"
    build.build(out, tmp_path / "work", execute="datasets.ipynb", bench_dir=bench, quiet=True)

    problems, summary = check.check_site(out)
    assert not problems, "\n".join(problems)

    lectures = [f"lectures/{p.stem}.html" for p in build.lectures()]
    homeworks = [f"homeworks/{p.parent.name}.html" for p in build.homeworks()]
    expected = {"index.html", "datasets.html", "grading.html", "execution.html", "benchmarks/index.html",
                "benchmarks/rendering.html", *lectures, *homeworks}
    assert expected <= set(summary["pages"]), sorted(expected - set(summary["pages"]))
    assert summary["maths"] > 0 and summary["images"] >= 3

    index = (out / "index.html").read_text()
    for page in lectures + homeworks:
        assert f'href="{page}' in index, f"the course map does not link {page}"
    assert "Executed by make site in quick mode" in (out / "datasets.html").read_text()
    assert "this build did not execute this notebook" in (out / lectures[0]).read_text()
    bench_page = (out / "benchmarks" / "rendering.html").read_text()
    assert bench_page.count("<img") >= 3  # gap, bits/dim on digits, sampling time
    assert len(re.findall(r"<tr", bench_page)) == 1 + len(_bench_rows())  # an HTML table, header + rows
    for page in homeworks:
        html = (out / page).read_text()
        assert "BEGIN SOLUTION" not in html and "BEGIN HIDDEN TESTS" not in html, page
    # nothing in the HTML or CSS points at another host for something to load
    loads = re.compile(r"""(?:src=|<link[^>]*href=|url\()["']?(https?://[^"')\s>]+)""")
    remote = {m for p in out.rglob("*") if p.suffix in (".html", ".css") for m in loads.findall(p.read_text())}
    assert not remote, sorted(remote)


def test_the_checker_finds_broken_pages(check, tmp_path):
    """A site with a broken image, raw maths, a dead link, a missing anchor and a remote script fails."""
    (tmp_path / "index.html").write_text(
        "<html><head><title>t</title><script src='http://example.invalid/x.js'></script></head><body>"
        "<p>Raw maths: $p(x) = 1$ here.</p><img src='missing.png'>"
        "<a href='gone.html'>dead</a> <a href='other.html#nowhere'>anchor</a></body></html>")
    (tmp_path / "other.html").write_text("<html><head><title>o</title></head><body><p id='here'>o</p></body></html>")
    problems, summary = check.check_site(tmp_path)
    text = "\n".join(problems)
    assert "image did not load" in text and "missing.png" in text
    assert "raw maths" in text
    assert "gone.html (HTTP 404)" in text
    assert "other.html#nowhere: no such anchor" in text
    assert "console" in text  # the blocked script and the missing files are failed requests in the console
    assert summary["pages"] == ["index.html", "gone.html", "other.html"]


def test_course_map_links_lectures_and_homework():
    build = _load("build")
    readme = ("# t\n\nintro\n\n## Course map\n\n| # | family | lecture | homework |\n|---|---|---|---|\n"
              "| 1 | AR | `lectures/01_ar.ipynb` | `homeworks/hw1_ar/` |\n| 3 | LV | planned | planned |\n\n## Next\n")
    table = build.course_map(readme, {"lectures/01_ar.ipynb": "lectures/01_ar.ipynb",
                                      "lectures/03_lv.ipynb": "lectures/03_lv.ipynb"},
                             {"homeworks/hw1_ar": "homeworks/hw1_ar.ipynb"})
    assert "| 1 | AR | [](lectures/01_ar.ipynb) | [](homeworks/hw1_ar.ipynb) |" in table
    # a lecture that exists before the README's row is updated is linked by its number
    assert "| 3 | LV | [](lectures/03_lv.ipynb) | planned |" in table
    assert "Next" not in table


def test_bench_figures_draw_what_the_rows_measure():
    """plot.bench_figures: the bars and points are the rows' own values, against the data's dimensions."""
    import math

    from deepul_helpers import data, plot

    rows = _bench_rows()
    figs = dict(plot.bench_figures(rows))
    assert list(figs) == ["gap", "bits_digits", "sampling_time"]  # 1d_a has a true entropy, digits has not
    gap_bars = [p.get_width() for p in figs["gap"].axes[0].patches]
    assert gap_bars == pytest.approx([r["gap_percent"] for r in rows if r["gap_percent"] is not None])
    bits_bars = [p.get_width() for p in figs["bits_digits"].axes[0].patches]
    assert bits_bars == pytest.approx([r["test_bits_per_dim"] for r in rows if r["dataset"] == "digits"])
    entropy_fig = plot.bench_bits_per_dim(rows, "1d_a")
    lines = [ln.get_xdata()[0] for ln in entropy_fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert lines == pytest.approx([data.info("1d_a").entropy / math.log(2)])
    points = {(x, y) for ln in figs["sampling_time"].axes[0].lines for x, y in zip(*ln.get_data())}
    assert points == {(data.info(r["dataset"]).dims, r["s_per_1000_samples"]) for r in rows}
    for fig in [*figs.values(), entropy_fig]:
        plot.close(fig)
