"""The course's taxonomy read from the package: the families (the sub-packages of ``deepul_helpers.models``)
and the models each exports, drawn as boxes and arrows.

A *model* here is a class a family exports (its ``__all__``) that is a ``torch.nn.Module`` with ``sample``
(a generative model) or ``encode`` (a representation); layers, bijectors and losses are left out. Each model
is marked by what it offers, read from its methods: an exact likelihood (``log_prob``), a bound on it
(``elbo``, ``log_prob_iw``, ``log_prob_bound``), samples only, or a representation only. Nothing is typed
by hand: a model added to a family appears in the figure.

    from deepul_helpers.models import taxonomy
    taxonomy.families()          # {"autoregressive": [("GatedPixelCNN", "exact likelihood"), ...], ...}
    taxonomy.draw(save_to="out/taxonomy.png")
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

# what a model offers -> the colour of its box
KINDS = {"exact likelihood": "#cfe2f3", "likelihood bound": "#fff2cc", "samples only": "#f4cccc",
         "representation": "#d9ead3"}


def _kind(cls) -> str:
    if hasattr(cls, "log_prob"):
        return "exact likelihood"
    if any(hasattr(cls, m) for m in ("log_prob_iw", "log_prob_bound", "elbo")):
        return "likelihood bound"
    return "samples only" if hasattr(cls, "sample") else "representation"


def families() -> dict[str, list[tuple[str, str]]]:
    """family -> [(model class name, kind)], families in the package's order, models alphabetical."""
    from torch import nn

    from deepul_helpers import models

    out = {}
    for info in pkgutil.iter_modules(models.__path__):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        found = []
        for name in sorted(getattr(module, "__all__", [])):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, nn.Module) and (hasattr(obj, "sample") or
                                                                       hasattr(obj, "encode")):
                found.append((name, _kind(obj)))
        out[info.name] = found
    return out


def draw(ax=None, save_to=None, title="The course's families and their reference models (deepul_helpers.models)"):
    """The taxonomy as a figure: the package at the top, an arrow to each family, and from each family a
    trunk with an arrow to each of its models (box colour: what the model offers, ``KINDS``). Returns the
    figure; ``save_to`` a path to save it."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Patch

    fams = families()
    tallest = max(len(m) for m in fams.values())
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.1 * len(fams), 1.6 + 0.42 * tallest))
    fig = ax.figure
    col_w, box_w, box_h, row_h = 1.0, 0.78, 0.62, 1.0
    top = 2.6  # the package box's centre; families at 1.2, models from 0 down
    ax.set_xlim(-0.1, col_w * len(fams))
    ax.set_ylim(-row_h * tallest - 0.2, top + 0.6)
    ax.axis("off")

    def box(x, y, w, h, text, color, size, weight="normal"):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    fc=color, ec="0.25", lw=1.0))
        ax.text(x, y, text, ha="center", va="center", fontsize=size, weight=weight, wrap=True)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 0.9,
                                                         "shrinkA": 0, "shrinkB": 0})

    mid = col_w * len(fams) / 2 - 0.05
    box(mid, top, 2.6, 0.55, "deepul_helpers.models", "white", 11, "bold")
    for i, (family, found) in enumerate(fams.items()):
        cx = i * col_w + col_w / 2 - 0.05
        fam_y = 1.3
        arrow(mid, top - 0.28, cx, fam_y + 0.5)
        box(cx, fam_y, box_w + 0.1, 1.0, f"{family}\n{len(found)} models", "#eeeeee", 10, "bold")
        trunk_x = cx - box_w / 2 - 0.06
        ys = [-(j + 0.1) * row_h - box_h / 2 + 0.45 for j in range(len(found))]
        if found:
            ax.plot([cx - 0.25, cx - 0.25, trunk_x, trunk_x], [fam_y - 0.5, fam_y - 0.72, fam_y - 0.72, ys[-1]],
                    color="0.3", lw=0.9)
        for (name, kind), y in zip(found, ys):
            arrow(trunk_x, y, cx - box_w / 2 + 0.04, y)
            box(cx + 0.02, y, box_w - 0.04, box_h * row_h, name, KINDS[kind], 8.5)
    ax.legend(handles=[Patch(fc=c, ec="0.25", label=k) for k, c in KINDS.items()], loc="lower right", fontsize=8,
              frameon=False, title="what the model offers", title_fontsize=8)
    if title:
        ax.set_title(title, fontsize=12)
    if save_to is not None:
        fig.savefig(save_to, dpi=110, bbox_inches="tight")
    return fig
