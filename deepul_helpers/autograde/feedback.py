"""One feedback HTML page per student: the verdict per question, then the executed notebook.

The executed notebook is the feedback copy (released test cells, hidden tests never present),
with outputs cut to a size cap and HTML sanitised, since it holds whatever the student printed.
Markdown is rendered (headings, paragraphs, tables, images survive the sanitiser; scripts, styles
and event attributes do not) and maths is typeset in the browser by the MathJax copy that the
``sphinx-mathjax-offline`` package ships, inlined into the page: the page is one self-contained file,
and nothing is fetched from the network.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import metadata

import nbformat

MAX_TEXT_PER_OUTPUT = 20_000
MAX_IMAGES = 40
MAX_HTML_BYTES = 8 * 2**20


def _cap_outputs(nb) -> None:
    images = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if any(k.startswith("image/") for k in data):
                images += 1
                if images > MAX_IMAGES:
                    continue
            if "text" in out and len(out["text"]) > MAX_TEXT_PER_OUTPUT:
                out["text"] = out["text"][:MAX_TEXT_PER_OUTPUT] + "\n[... output cut ...]\n"
            for key in [k for k in data if k.startswith("text/") and len(str(data[k])) > MAX_TEXT_PER_OUTPUT]:
                data[key] = str(data[key])[:MAX_TEXT_PER_OUTPUT] + "\n[... output cut ...]"
            if out.get("output_type") == "error":
                out["traceback"] = out.get("traceback", [])[-30:]
            kept.append(out)
        cell["outputs"] = kept


# What rendered markdown and HTML outputs may keep (nbconvert's own sanitiser keeps too little:
# it shows headings and paragraphs as escaped tags).
_TAGS = ["a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
         "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
         "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"]
_ATTRS = ("class", "id", "title", "alt", "width", "height", "colspan", "rowspan", "align")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if name == "href":
        return tag == "a" and not value.strip().lower().startswith("data:")
    if name == "src":
        return tag == "img" and value.strip().lower().startswith("data:image/")  # embedded: nothing fetched
    return name in _ATTRS


def clean_html(element) -> str:
    """Sanitise a piece of HTML from the notebook (rendered markdown, an HTML output)."""
    import bleach

    element = element.decode() if isinstance(element, bytes) else str(element)
    return bleach.clean(element, tags=_TAGS, attributes=_allowed_attribute,
                        protocols=["http", "https", "mailto", "data"])


@functools.lru_cache(maxsize=1)
def mathjax_script() -> str:
    """``<script>`` tags that typeset ``$...$``, ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]`` with the MathJax
    copy shipped by ``sphinx-mathjax-offline`` (SVG output: no font files); empty when it is not installed."""
    try:
        js = metadata.distribution("sphinx-mathjax-offline").locate_file(
            "sphinx-mathjax-offline/static/mathjax/tex-svg.js").read_text(encoding="utf-8")
    except (metadata.PackageNotFoundError, OSError):
        return ""
    config = ("window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
              "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true}, "
              "svg: {fontCache: 'global'}, options: {enableMenu: false}};")
    js = js.replace("</script", "<\\/script")
    return f"<script>{config}</script>\n<script>{js}</script>"


def _offline(page: str) -> str:
    """No script from the network (nbconvert's template loads require.js and MathJax 2 from a CDN)."""
    page = re.sub(r"<script[^>]*\ssrc=[\"']https?://[^>]*>\s*</script>", "", page)
    return page.replace("</head>", mathjax_script() + "\n</head>", 1)


def notebook_html(nb) -> str:
    """The notebook as a sanitised HTML page (outputs capped, maths typeset offline)."""
    from nbconvert import HTMLExporter

    nb = nbformat.from_dict(nb)
    _cap_outputs(nb)
    exporter = HTMLExporter(sanitize_html=True, embed_images=True, filters={"clean_html": clean_html})
    body, _ = exporter.from_notebook_node(nb)
    if len(body) > MAX_HTML_BYTES:  # still too big (many large images): drop every output
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                cell["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text="[outputs removed: too large]")]
        body, _ = exporter.from_notebook_node(nb)
    return _offline(body)


def summary_html(result, questions) -> str:
    """The verdict table (all strings escaped)."""
    e = html.escape
    rows = []
    for q in questions:
        msgs = result.question_messages.get(q.grade_id, [])
        flag = " (flagged for review)" if q.grade_id in result.review else ""
        claim = {True: "passed", False: "failed"}.get(result.claims.get(q.grade_id), "not run")
        rows.append(f"<tr><td>{e(q.grade_id)}</td><td>{result.scores.get(q.grade_id, 0):g} / {q.points:g}{e(flag)}"
                    f"</td><td>{'<br>'.join(e(m) for m in msgs) or 'ok'}</td><td>{claim}</td></tr>")
    general = "".join(f"<li>{e(m)}</li>" for m in result.messages)
    return (
        "<div style='font-family:sans-serif;margin:1em;padding:1em;border:2px solid #446;'>"
        f"<h2>Feedback: {e(result.assignment)} &mdash; {e(result.student)}</h2>"
        f"<p><b>Total: {result.total:g} / {result.max_total:g}</b> &mdash; status: {e(result.status)}</p>"
        "<table border='1' cellpadding='4' style='border-collapse:collapse'>"
        "<tr><th>question</th><th>points</th><th>what the grader found</th><th>the notebook's own test</th></tr>"
        + "".join(rows) + "</table>"
        + (f"<ul>{general}</ul>" if general else "")
        + "<p>The points come from the grader's own tests of your functions on hidden inputs; the "
          "checks in the notebook below are for your feedback only.</p></div>"
    )


def write_feedback(path, result, questions, executed_nb=None) -> None:
    """Write the page; without an executed notebook, the summary alone."""
    head = summary_html(result, questions)
    if executed_nb is None:
        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>feedback</title></head>"
                f"<body>{head}</body></html>")
    else:
        body = notebook_html(executed_nb)
        page, n = re.subn(r"(<body[^>]*>)", lambda m: m.group(1) + head, body, count=1)
        if not n:
            page = head + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
