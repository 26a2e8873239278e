"""Character-level text sets, ``(N, T)`` int64 character ids; ``info(name).vocab`` maps id -> char.

- ``text_grammar``: windows of T = 64 characters, each starting at a sentence start, of the
  sentence stream of the probabilistic grammar in ``grammar.py`` (10,000 train / 2,000 test,
  generated from the seed). ``info().entropy`` is the exact entropy of such a window per
  character; the grammar's entropy rate (the limit for long windows) is given in the
  description and as ``true_distribution("text_grammar").entropy_rate``.
- ``text_corpus``: real English assembled at run time from the docstrings of a fixed list of
  standard-library modules, read from their source files with ``ast`` (module, public
  top-level functions and classes, the classes' public methods, in source order; modules
  without Python source contribute nothing), so the text does not depend on what the
  process imported or patched before. Each docstring is cleaned (``inspect.cleandoc``), reduced to ASCII
  (NFKD), whitespace runs collapsed to one space within a paragraph and paragraphs separated
  by one newline; a paragraph already seen in an earlier docstring is dropped, then docstrings
  shorter than 40 characters are dropped.
  A docstring goes to the test split when the first byte of its sha256 is below 52 (about
  20%), else to train. Each split's docstrings are joined by a blank line and cut into
  consecutive windows of T = 128 characters (the tail is dropped). The character set is
  fixed: newline and the printable ASCII characters (96 ids). A fixed set (the seed is
  unused); its content, and so its recorded checksum, depends on the Python version.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import re
import unicodedata
from functools import cache
from pathlib import Path

import numpy as np

from ._common import Spec, as_rng, rng_for, to_numpy
from .grammar import Grammar

GRAMMAR_T = 64
CORPUS_T = 128
CORPUS_VOCAB = ("\n",) + tuple(chr(i) for i in range(32, 127))
CORPUS_MODULES = (
    "abc", "argparse", "asyncio.events", "asyncio.locks", "asyncio.queues", "asyncio.streams",
    "asyncio.tasks", "base64", "bdb", "bisect", "calendar", "cmd", "codecs", "collections", "colorsys",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "dis",
    "doctest", "email.message", "email.utils", "enum", "filecmp", "fnmatch", "fractions", "ftplib",
    "functools", "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html.parser",
    "http.client", "http.cookiejar", "http.server", "imaplib", "inspect", "io", "ipaddress", "itertools",
    "json", "locale", "logging", "logging.handlers", "mailbox", "math", "mimetypes", "numbers", "operator",
    "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil", "platform", "poplib", "pprint",
    "pstats", "pydoc", "queue", "random", "re", "reprlib", "runpy", "sched", "secrets", "selectors",
    "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "statistics", "string", "struct",
    "subprocess", "symtable", "sysconfig", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "trace", "traceback", "types", "unittest.case", "unittest.mock", "urllib.parse",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree",
    "zipfile",
)


# --- text_grammar ---------------------------------------------------------------------------

class GrammarDistribution:
    """The exact distribution of ``text_grammar`` windows (length T, from a sentence start)."""

    def __init__(self, T: int = GRAMMAR_T):
        self.grammar, self.T = Grammar(), T

    @property
    def entropy(self) -> float:
        """Exact entropy of a window, nats per character."""
        return self.grammar.window_entropy(self.T) / self.T

    @property
    def entropy_rate(self) -> float:
        """The grammar's entropy rate, nats per character (the limit of ``entropy`` as T grows)."""
        return self.grammar.entropy_rate()

    def log_prob(self, ids) -> np.ndarray:
        """Exact log-probability (nats) of each window ``(N, T)``."""
        return self.grammar.log_prob(to_numpy(ids))

    def sample(self, n: int, rng) -> np.ndarray:
        """n windows (n, T) int64; ``rng`` is a numpy Generator or an integer seed."""
        return self.grammar.sample(n, self.T, as_rng(rng))


def _grammar_generate(seed):
    x = GrammarDistribution().sample(12_000, rng_for("text_grammar", seed))
    return {"train": x[:10_000], "test": x[10_000:]}


def _grammar_description() -> str:
    d = GrammarDistribution()
    return (f"sentences of a small probabilistic grammar, windows of {GRAMMAR_T} chars from a sentence start; "
            f"exact entropy per char of a window; entropy rate {d.entropy_rate:.4f} nats/char")


# --- text_corpus ----------------------------------------------------------------------------

def _clean(doc: str) -> str:
    doc = unicodedata.normalize("NFKD", inspect.cleandoc(doc)).encode("ascii", "ignore").decode()
    paragraphs = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", doc)]
    return "\n".join(p for p in paragraphs if p)


def _source_docstrings(mod_name: str) -> list[str]:
    """Docstrings of a standard-library module read from its source file, in source order: the
    module, its public top-level functions and classes, and the classes' public methods.

    Reading the source (not the live objects) keeps the corpus independent of what the process
    imported or patched before; a module without Python source (a C extension) gives nothing.
    """
    spec = importlib.util.find_spec(mod_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    docs = [ast.get_docstring(tree, clean=False)]
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        if isinstance(node, defs) and not node.name.startswith("_"):
            docs.append(ast.get_docstring(node, clean=False))
            if isinstance(node, ast.ClassDef):
                docs += [ast.get_docstring(m, clean=False) for m in node.body
                         if isinstance(m, defs[:2]) and not m.name.startswith("_")]
    return [d for d in docs if d]


def corpus_documents() -> list[str]:
    """The cleaned docstrings, in their fixed order, without repeats: a paragraph already seen
    in an earlier docstring is dropped (inherited and copied text appears once)."""
    docs, seen = [], set()
    for mod_name in CORPUS_MODULES:
        for doc in _source_docstrings(mod_name):
            paragraphs = [p for p in _clean(doc).split("\n") if p not in seen]
            seen.update(paragraphs)
            text = "\n".join(paragraphs)
            if len(text) >= 40:
                docs.append(text)
    return docs


@cache
def _corpus_splits() -> dict:
    cid = {c: i for i, c in enumerate(CORPUS_VOCAB)}
    texts = {"train": [], "test": []}
    for doc in corpus_documents():
        texts["test" if hashlib.sha256(doc.encode()).digest()[0] < 52 else "train"].append(doc)
    out = {}
    for split, docs in texts.items():
        ids = np.array([cid[c] for c in "\n\n".join(docs)], dtype=np.int64)
        n = len(ids) // CORPUS_T
        out[split] = ids[: n * CORPUS_T].reshape(n, CORPUS_T)
    return out


def _corpus_generate(seed):
    return {k: v.copy() for k, v in _corpus_splits().items()}


SPECS = [
    Spec(name="text_grammar", description=_grammar_description(), kind="text", shape=(GRAMMAR_T,),
         levels=len(Grammar().vocab), n_train=10_000, n_test=2_000, generate=_grammar_generate,
         entropy=lambda: GrammarDistribution().entropy, distribution=GrammarDistribution,
         vocab=lambda: Grammar().vocab),
    Spec(name="text_corpus", description=f"English docstrings of {len(CORPUS_MODULES)} standard-library modules, "
         f"windows of {CORPUS_T} chars; fixed split (seed unused), depends on the Python version",
         kind="text", shape=(CORPUS_T,), levels=len(CORPUS_VOCAB), n_train=None, n_test=None,
         generate=_corpus_generate, seeded=False, vocab=lambda: CORPUS_VOCAB),
]
