"""The homework kit: what every runner ``deepul_helpers/homework/hwN.py`` is made of.

A runner module holds the expected-results table and one ``run_qk`` per question, all with one
signature: ``run_qk(fn, *, quick=None, seed=0, device="auto", out=None) -> dict``::

    from deepul_helpers.homework import kit

    ASSIGNMENT = "hw0_template"
    EXPECTED = kit.table(  # the ONE place of the numbers; the notebook's markdown states row.markdown()
        kit.Expected("q1", "1d_a", loss=2.6271, tol=0.02, seconds=5, variant="histogram"),
    )

    def run_q1(q1_fit, *, quick=None, seed=0, device="auto", out=None) -> dict:
        run = kit.start(ASSIGNMENT, quick=quick, seed=seed, device=device, out=out)
        exp = EXPECTED["q1/1d_a/histogram"]
        train_x, test_x = run.splits(exp.data)
        res = run.call(q1_fit, train_x, test_x, 20, returns=("train_losses", "test_losses", "probs"))
        run.save(kit.curves(res, exp), "q1_curves.png")     # saved under out/, shown in a notebook
        run.finish(exp, res)                               # report against EXPECTED, then record
        return res.values

``run.call`` passes ``quick=, seed=, device=`` to the student's function, times it
(``deepul_helpers.timing``), and checks what it returned against ``returns`` with an error that
states the contract; ``train_losses`` / ``test_losses`` come back as checked float64 arrays.
``run.quick`` is always resolved through ``config.is_quick``: the one place that decides quick mode.

The runners never import a reference model that a question asks the student to write (the grader
would report it as the student's import): they only load data, call, check, plot, report and record.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepul_helpers import config, data, metrics, notebook, plot
from deepul_helpers.timing import timed

LOSSES = ("train_losses", "test_losses")

# ----------------------------------------------------------------------------- expected results


@dataclass(frozen=True)
class Expected:
    """One expected result: the reference solution's final test loss in full mode, seed 0.

    question: "q1";  data: the data set's registry name;  variant: the model, when a question has several.
    loss:     in ``unit`` (nats/dim for likelihood models; "nats per example" for a contrastive loss);
    tol:      how far a correct solution may land from it (same unit);
    seconds:  full-mode seconds of this run of the reference on a 2-core CPU.
    The true entropy comes from the data registry (``entropy``), never typed here.
    """

    question: str
    data: str
    loss: float
    tol: float
    seconds: float
    variant: str = ""
    unit: str = "nats/dim"

    @property
    def key(self) -> str:
        """``"q1/1d_a/histogram"`` (``"q1/1d_a"`` without a variant): also the prefix of its records."""
        return "/".join(p for p in (self.question, self.data, self.variant) if p)

    @property
    def entropy(self) -> float | None:
        """The data set's true entropy in nats/dim where it is known (``data.info(...).entropy``)."""
        return data.info(self.data).entropy

    @property
    def took(self) -> str:
        """The full-mode time in words: "about 5 s", "under a second"."""
        return f"about {self.seconds:.0f} s" if self.seconds >= 1 else "under a second"

    def markdown(self) -> str:
        """The line the notebook's markdown states for this row (a test checks it is there)."""
        what = f"`{self.data}`" + (f", {self.variant}" if self.variant else "")
        return f"- {what}: **{self.loss:.3f} {self.unit}** (± {self.tol:.3f}), {self.took}"


def table(*rows: Expected) -> dict[str, Expected]:
    """The expected-results table of a homework, keyed by ``row.key``."""
    out: dict[str, Expected] = {}
    for row in rows:
        if row.key in out:
            raise ValueError(f"expected-results table: {row.key!r} appears twice")
        if not (row.loss > 0 and 0 < row.tol < row.loss and row.seconds > 0):
            raise ValueError(f"expected-results table: {row.key!r} needs loss > tol > 0 and seconds > 0, got {row}")
        out[row.key] = row
    return out


def rows(expected: dict[str, Expected], question: str) -> list[Expected]:
    """The rows of question ``question``, in the table's order."""
    return [r for r in expected.values() if r.question == question]


def markdown(expected: dict[str, Expected], question: str) -> str:
    """The markdown block a notebook states under question ``question`` (paste it verbatim)."""
    return "**Expected test loss** and time:\n" + "\n".join(r.markdown() for r in rows(expected, question))


# ----------------------------------------------------------------------------- one runner call


def output_dir(homework: str, out=None) -> Path:
    """Where a homework's plots go (created): ``out`` if given, else ``$DEEPUL_OUT/<homework>``,
    else ``out/<homework>`` in the current folder (in Jupyter: beside the student's notebook),
    never inside the installed package."""
    if out is not None:
        path = Path(out)
    elif os.environ.get("DEEPUL_OUT"):
        path = Path(os.environ["DEEPUL_OUT"]) / homework
    else:
        path = Path.cwd() / "out" / homework
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_numpy(x, what: str) -> np.ndarray:
    """A student's tensor / array / list as a numpy array (dtype kept), or a TypeError naming ``what``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # noqa: BLE001 - any failure is the same contract error
        raise TypeError(f"{what}: expected an array, got {type(x).__name__}") from e


def check_losses(train_losses, test_losses, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Train losses per iteration and test losses per epoch (with the one before training), finite."""
    train = to_numpy(train_losses, f"{what} train_losses").astype(np.float64).reshape(-1)
    test = to_numpy(test_losses, f"{what} test_losses").astype(np.float64).reshape(-1)
    if len(train) < 1:
        raise ValueError(f"{what}: train_losses is empty; return one loss per training iteration")
    if len(test) < 2:
        raise ValueError(f"{what}: test_losses has {len(test)} values; return the test loss before "
                         "training and after every epoch (epochs + 1 values)")
    if not (np.all(np.isfinite(train)) and np.all(np.isfinite(test))):
        raise ValueError(f"{what}: the losses contain NaN or inf; lower the learning rate or clip gradients")
    return train, test


def check_levels(x, shape: tuple, levels: int, what: str) -> np.ndarray:
    """``x`` as an integer array of the given shape (None = any size) with values in 0..levels-1."""
    x = to_numpy(x, what)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{what}: expected integer levels, got dtype {x.dtype}")
    if x.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, x.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{what}: expected shape {want}, got {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= levels):
        raise ValueError(f"{what}: values must lie in 0..{levels - 1}, got {x.min()}..{x.max()}")
    return x


@dataclass
class Called:
    """What a student's function returned (by contract name), checked, and what the call took."""

    label: str
    values: dict
    seconds: float
    cpu_seconds: float

    def __getitem__(self, name: str):
        return self.values[name]

    @property
    def train(self) -> np.ndarray:
        return self.values["train_losses"]

    @property
    def test(self) -> np.ndarray:
        return self.values["test_losses"]


@dataclass
class Run:
    """One runner call's settings (from :func:`start`) and the steps every runner takes."""

    homework: str
    quick: bool
    seed: int
    device: str
    out: Path
    lines: list[str] = field(default_factory=list)

    def splits(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The train and test splits of data set ``name`` for this run's seed."""
        return data.load(name, "train", seed=self.seed), data.load(name, "test", seed=self.seed)

    def call(self, fn, *args, returns: tuple[str, ...], label: str | None = None, settings: bool = True,
             **kwargs) -> Called:
        """Call the student's ``fn(*args, **kwargs, quick=, seed=, device=)`` (without the three
        settings when ``settings=False``), timed, and check it returned ``returns``: one value when
        ``returns`` names one, else a tuple of that length. ``train_losses``/``test_losses`` are
        checked (see ``check_losses``) and come back as float64 arrays."""
        label = label or getattr(fn, "__name__", "your function")
        if not callable(fn):
            raise TypeError(f"{label}: expected your function, got {type(fn).__name__}")
        if settings:
            kwargs = {**kwargs, "quick": self.quick, "seed": self.seed, "device": self.device}
        result, wall, cpu = timed(fn, *args, **kwargs)
        if len(returns) == 1:
            values = {returns[0]: result}
        elif isinstance(result, (tuple, list)) and len(result) == len(returns):
            values = dict(zip(returns, result))
        else:
            got = f"a {type(result).__name__} of {len(result)}" if isinstance(result, (tuple, list)) \
                else f"a {type(result).__name__}"
            raise TypeError(f"{label} must return a tuple ({', '.join(returns)}); got {got}")
        if all(k in values for k in LOSSES):
            values["train_losses"], values["test_losses"] = check_losses(
                values["train_losses"], values["test_losses"], label)
        return Called(label, values, wall, cpu)

    def save(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<out>/<name>``, show it when running in a notebook, then free it."""
        path = self.out / name
        fig.savefig(path, dpi=100, bbox_inches="tight")
        if "ipykernel" in sys.modules:
            from IPython.display import display

            display(fig)
        plot.close(fig)
        return path

    def report(self, exp: Expected, final: float) -> str:
        """Print the final test loss next to the expected one (and the true entropy where known)."""
        final = float(final)
        bits = f" ({metrics.bits_per_dim(final):.4f} bits/dim)" if exp.unit == "nats/dim" else ""
        line = (f"{exp.key}: final test loss {final:.4f} {exp.unit}{bits}; "
                f"expected {exp.loss:.3f} ± {exp.tol:.3f} (reference, full mode, {exp.took} on a 2-core CPU)")
        if exp.unit == "nats/dim" and exp.entropy is not None:
            line += f"; true entropy {exp.entropy:.4f} (gap {metrics.gap_percent(final, exp.entropy):.1f}%)"
        if self.quick:
            line += "  [quick mode: training was cut short, compare only after a full run]"
        elif final > exp.loss + exp.tol:
            line += "  <-- outside the tolerance (above the reference)"
        elif final < exp.loss - exp.tol:
            line += ("  (lower than the reference by more than its tolerance: a better model, or a loss "
                     "not measured on the test data)")
        print(line)
        self.lines.append(line)
        return line

    def record(self, prefix: str, **values) -> None:
        """``notebook.record(f"{prefix}/{name}", value)`` for each value (what the tests read back)."""
        for name, value in values.items():
            notebook.record(f"{prefix}/{name}", value)

    def finish(self, exp: Expected, res: Called, **extra) -> str:
        """Report ``res``'s final test loss against ``exp`` and record its losses, seconds and ``extra``
        under ``exp.key``."""
        line = self.report(exp, res.test[-1])
        self.record(exp.key, train_losses=res.train, test_losses=res.test, seconds=res.seconds, **extra)
        return line


def start(homework: str, *, quick=None, seed: int = 0, device="auto", out=None) -> Run:
    """The settings of one runner call: quick mode resolved by ``config.is_quick``, the output
    folder ``output_dir(<homework's short name>, out)`` ("hw1" for "hw1_autoregressive")."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    short = homework.split("_", 1)[0]
    return Run(homework=homework, quick=config.is_quick(quick), seed=int(seed), device=device,
               out=output_dir(short, out))


# ----------------------------------------------------------------------------- figures


def curves(res: Called, exp: Expected | None = None, panel=None, title: str | None = None):
    """Training curves of ``res`` (with the true entropy of ``exp``'s data set as a reference line),
    and ``panel(ax)`` drawn on a second axis when given (samples, a density, a histogram)."""
    import matplotlib.pyplot as plt

    title = title or (f"{exp.data}: {exp.variant or exp.question}" if exp else res.label)
    reference = exp.entropy if exp else None
    if panel is None:
        return plot.training_curves(res.train, res.test, title=title, reference=reference)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    plot.training_curves(res.train, res.test, title=title, ax=axes[0], reference=reference)
    panel(axes[1])
    fig.tight_layout()
    return fig


def image_panel(samples, levels: int, title: str):
    """``panel`` for :func:`curves`: a grid of NHWC samples."""

    def draw(ax):
        grid = plot.image_grid(np.asarray(samples).astype(np.uint8), levels=levels)
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray")
        ax.set_title(title)
        ax.axis("off")

    return draw
