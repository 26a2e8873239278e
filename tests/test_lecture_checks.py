"""The shared lecture checks find each kind of problem they promise to find, and pass a clean lecture."""

from __future__ import annotations

import nbformat
from lecture_checks import code_cell_lengths, committed_problems, executed_problems
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output


def _nb(*cells):
    params = new_code_cell('quick = False\nseed = 0\ndevice = "auto"', metadata={"tags": ["parameters"]})
    return new_notebook(cells=[new_markdown_cell("# title"), params, *cells])


def _result(text, png=False):
    data = {"text/plain": text}
    if png:
        data["image/png"] = "iVBORw0KGgo="
    return new_output("execute_result", data=data, execution_count=1)


def test_a_clean_lecture_passes_and_cells_are_counted():
    nb = _nb(new_code_cell("x = 1\nprint(x)", outputs=[new_output("stream", name="stdout", text="1\n")]),
             new_code_cell("plot.scatter_2d(x);", outputs=[new_output("display_data", data={
                 "image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 450x450 with 1 Axes>"})]))
    assert executed_problems(nb) == []
    assert code_cell_lengths(nb) == [2, 1]
    assert "1 figures (at least 3" in executed_problems(nb, min_figures=3)[0]


def test_each_stray_output_is_named():
    nb = _nb(new_code_cell("torch.manual_seed(0)", outputs=[_result("<torch._C.Generator at 0x7f3a2c1b9e30>")]),
             new_code_cell("rows", outputs=[_result("[{'a': np.float64(0.25)}]")]),
             new_code_cell("plot.table(rows)", outputs=[_result("<Figure size 640x480 with 1 Axes>", png=True)]),
             new_code_cell("1 / 0", outputs=[new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                                        traceback=[])]),
             new_code_cell("print(d)", outputs=[new_output("stream", name="stdout", text="{'x': np.int64(3)}\n")]),
             new_code_cell("obj", outputs=[_result("<__main__.Thing object at 0xdeadbeef>")]))
    problems = executed_problems(nb, min_figures=0)
    assert len(problems) == 6, problems
    for i, what in enumerate(["default repr <torch._C.Generator at 0x", "np.float64(", "figure twice",
                              "ZeroDivisionError", "np.int64(", "default repr <__main__.Thing object at"]):
        assert what in problems[i], (what, problems[i])


def test_committed_conventions():
    long_cell = new_code_cell("\n".join(f"a{i} = {i}" for i in range(16)))
    nb = _nb(long_cell, new_code_cell("torch.manual_seed(seed)"), new_code_cell("h = fit(m, x, y, quick=quick)"),
             new_code_cell("x = 1", outputs=[new_output("stream", name="stdout", text="1\n")]))
    problems = committed_problems(nb)
    assert len(problems) == 4, problems
    assert "16 lines" in problems[0] and "seed_everything" in problems[1] and "fit(" in problems[2]
    assert "outputs" in problems[3]
    nb.cells[1].source = "quick = True\nseed = 0\ndevice = 'auto'"
    assert "parameters" in committed_problems(nb)[0]
    assert committed_problems(nbformat.from_dict(_nb(new_code_cell("h = fit(m, x, y, quick=quick, seed=seed, "
                                                                   "device=device)")))) == []
