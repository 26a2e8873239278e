"""nbgrader's formgrader with this course's offline rule: its submission pages typeset maths without a CDN.

formgrader renders a submission with nbconvert's classic HTML template, whose ``mathjax()`` macro loads
MathJax 2 from cdnjs; nbgrader's ``formgrade/index.html.j2`` calls it without a URL, so
``HTMLExporter.mathjax_url`` cannot change it. ``grading/nbgrader_config.py`` puts
``grading/jupyter`` on ``JUPYTER_PATH``, where ``nbconvert/templates/formgrade/mathjax.html.j2`` is found
before nbconvert's own macro and calls the filter :func:`offline_mathjax` (registered there as
``HTMLExporter.filters``): the MathJax 3 copy the feedback pages inline (``feedback.mathjax_script``), and
the MathJax 2 calls formgrader's own script makes (``MathJax.Hub.Startup.signal.Interest``: it waits for
the end of typesetting before it focuses the first cell).
"""

from __future__ import annotations

# formgrade.js (nbgrader) uses MathJax 2's startup signal; MathJax 3 has a promise instead.
_MATHJAX2_CALLS = """<script>
(function () {
  var M = window.MathJax = window.MathJax || {};
  var ready = M.startup && M.startup.promise ? M.startup.promise : Promise.resolve();
  M.Hub = {Startup: {signal: {Interest: function (f) { ready.then(function () { f("End"); }); }}},
           Queue: function () { if (M.typesetPromise) { M.typesetPromise(); } }};
})();
</script>"""


def offline_mathjax(_url: str = "") -> str:
    """The ``<script>`` tags formgrader's pages get instead of MathJax from a CDN (``_url`` is ignored)."""
    from deepul_helpers.autograde.feedback import mathjax_script

    return mathjax_script() + "\n" + _MATHJAX2_CALLS
