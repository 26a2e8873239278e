"""notebook.record / notebook.execute / notebook.run: quick mode injected, records handed back, errors
name the cell, outputs capped."""

from __future__ import annotations

import json

import nbformat
import pytest

from deepul_helpers import notebook


def _write_nb(path, cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("quick = False\nseed = 0\ndevice = 'auto'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_record_without_environment_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(notebook.RECORD_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert notebook.record("x", 3) == 3
    assert list(tmp_path.iterdir()) == []


def test_record_merges_plain_values(tmp_path, monkeypatch):
    import numpy as np
    import torch

    target = tmp_path / "rec.json"
    monkeypatch.setenv(notebook.RECORD_ENV, str(target))
    notebook.record("a", np.arange(3))
    notebook.record("b", {"t": torch.tensor([1.5]), "f": np.float32(2.0)})
    assert json.loads(target.read_text()) == {"a": [0, 1, 2], "b": {"t": [1.5], "f": 2.0}}


@pytest.mark.notebook
def test_execute_injects_quick_mode_and_returns_records(tmp_path):
    nb = _write_nb(tmp_path / "demo.ipynb", [
        "from deepul_helpers import config, notebook\n"
        "notebook.record('quick_param', quick)\n"
        "notebook.record('is_quick', config.is_quick(quick))\n"
        "notebook.record('seed', seed)",
    ])
    out, records = notebook.execute(nb, parameters={"seed": 5}, out_dir=tmp_path / "out")
    assert records == {"quick_param": True, "is_quick": True, "seed": 5}
    executed = nbformat.read(out, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


@pytest.mark.notebook
def test_execute_failure_names_the_error(tmp_path):
    from nbclient.exceptions import CellExecutionError

    nb = _write_nb(tmp_path / "bad.ipynb", ["x = 1", "raise ValueError('broken on purpose')", "y = 2"])
    with pytest.raises(CellExecutionError, match="broken on purpose"):
        notebook.execute(nb, out_dir=tmp_path / "out")
    saved = nbformat.read(tmp_path / "out" / "bad.ipynb", as_version=4)  # written up to the failing cell
    assert [c.execution_count is not None for c in saved.cells[-3:]] == [True, True, False]


@pytest.mark.notebook
def test_run_caps_outputs_and_goes_on_past_errors(tmp_path):
    path = _write_nb(tmp_path / "loud.ipynb", ["print('x' * 5000)", "1 / 0", "print('after')"])
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="stale")]
    out = notebook.run(nb, cwd=tmp_path, cell_timeout=60, parameters={"quick": True}, output_cap=1000,
                       save_to=tmp_path / "run.ipynb")
    assert out.cells[1].metadata.tags == ["injected-parameters"] and "quick = True" in out.cells[1].source
    loud, error, after = out.cells[2:]
    assert [o.get("name") for o in loud.outputs] == ["grader"] and "output cut" in loud.outputs[0].text
    assert error.outputs[-1].output_type == "error" and error.outputs[-1].ename == "ZeroDivisionError"
    assert after.execution_count is not None
    assert nbformat.read(tmp_path / "run.ipynb", as_version=4).cells[-1].execution_count is not None
