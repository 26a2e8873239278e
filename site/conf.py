"""Sphinx configuration of the course website; ``site/build.py`` stages the pages and runs Sphinx with it.

What changes from one build to the next (quick or full mode, the execution cache, which notebooks
not to execute) comes from the JSON file named by ``DEEPUL_SITE_SETTINGS``, written by build.py.
"""

import json
import os
import time

from docutils import nodes

_settings = json.loads(open(os.environ["DEEPUL_SITE_SETTINGS"]).read()) if os.environ.get(
    "DEEPUL_SITE_SETTINGS") else {"mode": "quick", "cache": None, "no_execute": ["**"]}

project = "Deep Unsupervised Learning"
author = "the deepul course staff"
copyright = "the deepul course staff"  # noqa: A001 (Sphinx's name)
html_title = "Deep Unsupervised Learning"

extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax from the package's own copy, never a CDN
exclude_patterns = ["_downloads/**", "**/.ipynb_checkpoints", "**/*.records.json"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

# MyST-NB executes the lectures (jupyter-cache: a notebook whose code and package are unchanged is not re-run)
nb_execution_mode = "cache"
nb_execution_cache_path = _settings["cache"] or ""
nb_execution_excludepatterns = _settings["no_execute"]
nb_execution_timeout = 3600  # seconds per cell: full-mode training cells take minutes
nb_execution_raise_on_error = True  # a lecture that fails stops the build instead of showing a traceback
nb_execution_show_tb = True
nb_execution_in_temp = True  # whatever a notebook writes stays out of the page sources
nb_merge_streams = True
nb_render_markdown_format = "myst"  # Markdown outputs (tables) are parsed like the pages

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "use_download_button": True,
    "use_fullscreen_button": True,
    "show_navbar_depth": 1,
    "navigation_with_keys": False,
    # benchmark tables take the width of the in-page contents column
    "secondary_sidebar_items": {"**": ["page-toc"], **{page: [] for page in _settings.get("wide_pages", [])}},
}
html_static_path = ["_static"]
html_css_files = ["deepul.css"]
html_show_sphinx = False
html_favicon = "_static/favicon.svg"  # else the browser asks for /favicon.ico
html_context = {"default_mode": "light"}  # a first visit has no stored light/dark choice


def _execution_note(app, doctree):
    """Under an executed notebook's title (lectures, site pages): its mode and time, or that it was not run."""
    docname = app.env.docname
    if docname.startswith("homeworks/") or not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    data = getattr(app.env, "nb_metadata", {}).get(docname, {}).get("exec_data")
    para = nodes.paragraph()
    if data and data.get("succeeded"):
        mode = _settings["mode"]
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(data["mtime"]))
        runtime = data.get("runtime")
        took = f" in {runtime:.0f} s wall-clock" if runtime is not None else ""
        para += nodes.Text(f"Executed by make site in {mode} mode{took} ({when}; the machine may have been shared).")
        if mode == "quick":
            para += nodes.Text(" Quick mode (")
            para += nodes.literal(text="DEEPUL_QUICK=1")
            para += nodes.Text(") trains for a few iterations only, so losses and samples are rough: run the "
                               "notebook with ")
            para += nodes.literal(text="quick = False")
            para += nodes.Text(", or build the site with ")
            para += nodes.literal(text="make site FULL=1")
            para += nodes.Text(", for the real figures.")
    else:
        para += nodes.Text("Shown as committed, without outputs: this build did not execute this notebook.")
    note = nodes.note("", para, classes=["deepul-execution"])
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, note)
    else:
        doctree.insert(0, note)


def _plain_status(app, doctree, docname):
    """MyST-NB's execution table marks success with emoji, which a machine without an emoji font shows as boxes."""
    for node in list(doctree.findall(nodes.Text)):
        if str(node) in ("✅", "❌"):
            node.parent.replace(node, nodes.Text("ok" if str(node) == "✅" else "failed"))


def setup(app):
    app.connect("doctree-read", _execution_note)
    app.connect("doctree-resolved", _plain_status)
    return {"parallel_read_safe": True}
