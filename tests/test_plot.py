"""Every plot returns a figure, saves only when asked, and rejects malformed input clearly."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from deepul_helpers import plot
from deepul_helpers.train import History


def _calls():
    rng = np.random.default_rng(0)
    hist = History(train_losses=np.linspace(3, 1, 50), test_losses=np.array([3.0, 2.0, 1.5]), wall_time_s=1.0,
                   epochs=2, iterations=50, device="cpu", quick=False)
    return {
        "samples_grid": lambda p: plot.samples_grid(rng.integers(0, 4, (10, 8, 8, 3), dtype=np.uint8), levels=4,
                                                    save_to=p),
        "samples_grid_float": lambda p: plot.samples_grid(rng.random((4, 5, 5, 1)), save_to=p),
        "scatter_2d": lambda p: plot.scatter_2d(rng.normal(size=(100, 2)), title="x", save_to=p),
        "density_table": lambda p: plot.density_2d(rng.random((25, 25)), save_to=p),
        "density_fn": lambda p: plot.density_2d(lambda x: np.exp(-(x**2).sum(1)), extent=(-2, 2, -2, 2),
                                                resolution=30, save_to=p),
        "hist_1d": lambda p: plot.hist_1d(rng.integers(0, 20, 500), 20, model_probs=np.full(20, 0.05),
                                          true_probs=np.full(20, 0.05), save_to=p),
        "curves_history": lambda p: plot.training_curves(hist, reference=1.2, save_to=p),
        "curves_arrays": lambda p: plot.training_curves(hist.train_losses, hist.test_losses, save_to=p),
        "table": lambda p: plot.table([{"model": "a", "bits/dim": 1.23}, {"model": "b", "x": None}], save_to=p),
        "text_lines": lambda p: plot.text_lines(["hello", "world"], save_to=p),
        "waveforms": lambda p: plot.waveforms(rng.integers(0, 256, (3, 100)), save_to=p),
        "timing": lambda p: plot.timing([1, 2], {"a": [1.0, 2.0]}, xlabel="n", note="best of 3", save_to=p),
        "receptive_field": lambda p: plot.receptive_field(np.tri(5, dtype=bool), (2, 2), title="f", save_to=p),
    }


@pytest.mark.parametrize("name", list(_calls()))
def test_plot_returns_figure_and_saves_only_when_asked(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = _calls()[name](None)
    assert isinstance(fig, Figure)
    assert list(tmp_path.iterdir()) == []  # nothing written without save_to
    target = tmp_path / "sub" / f"{name}.png"
    _calls()[name](target)
    assert target.exists() and target.stat().st_size > 1000
    plot.close()


def test_image_grid_tiles_in_raster_order():
    imgs = np.zeros((4, 2, 2, 1), dtype=np.uint8)
    imgs[3] = 1
    grid = plot.image_grid(imgs, nrow=2, levels=2, pad=0)
    assert grid.shape == (4, 4, 1)
    assert grid[2:, 2:].min() == 1.0 and grid[:2].max() == 0.0


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="NHWC"):
        plot.samples_grid(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot.scatter_2d(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="extent"):
        plot.density_2d(lambda x: x)


def test_extent_of_widens_the_range_by_the_margin():
    pts = np.array([[0.0, -1.0], [2.0, 3.0], [1.0, 0.0]])
    assert plot.extent_of(pts, margin=0.0) == (0.0, 2.0, -1.0, 3.0)
    assert plot.extent_of(pts, margin=0.25) == pytest.approx((-0.5, 2.5, -2.0, 4.0))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot.extent_of(np.zeros((0, 2)))


def test_histogram_2d_counts_row_then_column():
    rng = np.random.default_rng(0)
    pts = np.stack([rng.integers(0, 3, 500), rng.integers(0, 5, 500)], 1)
    counts = plot.histogram_2d(pts, (3, 5), normalize=False)
    literal = np.zeros((3, 5))
    for r, c in pts:  # the literal loop
        literal[r, c] += 1
    assert np.array_equal(counts, literal)
    freq = plot.histogram_2d(pts, (3, 5))
    assert freq.sum() == pytest.approx(1.0) and np.allclose(freq, literal / 500)
    assert plot.histogram_2d(np.array([[1, 2]]), 4)[1, 2] == 1.0  # square grid from an int
    with pytest.raises(ValueError, match="must lie in"):
        plot.histogram_2d(np.array([[0, 5]]), (3, 5))
    with pytest.raises(ValueError, match="integers"):
        plot.histogram_2d(np.zeros((4, 2)), 3)


def test_table_cells_hold_their_text_and_the_figure_holds_the_table():
    rows = [{"model": "a model with a rather long name", "data": "text_grammar", "bits/dim": 1.234567},
            {"model": "b", "data": "1d_b", "note": "a long remark " * 8}]
    fig = plot.table(rows, title="a title")
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    (tab,) = fig.axes[0].tables
    fig_box = fig.bbox
    for (r, c), cell in tab.get_celld().items():
        box, text = cell.get_window_extent(renderer), cell.get_text().get_window_extent(renderer)
        assert box.x0 <= text.x0 and text.x1 <= box.x1, (r, c, cell.get_text().get_text())
        assert box.y0 <= text.y0 and text.y1 <= box.y1, (r, c, cell.get_text().get_text())
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0 and box.y1 <= fig_box.y1
    assert "\n" in tab.get_celld()[2, 3].get_text().get_text()  # the long remark is wrapped
    assert tab.get_celld()[1, 2].get_text().get_text() == "1.235"
    plot.close()
