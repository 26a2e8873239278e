"""The audit channel from the sandbox to the judge: what student code touched of a forbidden module.

In the sandbox (verdict run), :func:`install_hook` adds an audit hook (which cannot be removed)
that writes one :class:`Event` per line to a pipe the grader reads as it happens:

    START             the reference modules are loaded; from here on, student code runs
    IMPORT <module>   an import of a forbidden module (or of one of its submodules)
    OPEN <path>       an open of a file of a forbidden module's code
    END               every probe ran: a channel without this last line was interfered with

In the grader, :func:`read_events` turns those lines back into events and :func:`forbidden_use`
says what counts against a question. Both sides share this module, so they cannot disagree
on the wire format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    START = "S"
    END = "E"
    IMPORT = "I"
    OPEN = "O"
    NOISE = "?"  # never sent: a line of the channel that is no event (garbled, or written by student code)


@dataclass(frozen=True)
class Event:
    kind: Kind
    detail: str = ""  # the module (IMPORT) or the real path (OPEN)

    @property
    def line(self) -> str:
        """The event as one line of the channel (without its newline)."""
        return f"{self.kind.value} {self.detail}" if self.detail else self.kind.value

    def encode(self) -> bytes:
        return (self.line + "\n").encode()

    @classmethod
    def decode(cls, line: str) -> Event:
        """The event a line holds (NOISE for a line that is none)."""
        tag, _, detail = line.partition(" ")
        kind = next((k for k in Kind if k.value == tag and k is not Kind.NOISE), Kind.NOISE)
        if kind is Kind.NOISE or (kind in (Kind.START, Kind.END) and line != tag):
            return cls(Kind.NOISE, line)  # (its line is then "? <line>")
        return cls(kind, detail)


START, END = Event(Kind.START), Event(Kind.END)


def module_matches(module: str, forbidden: str) -> bool:
    """``module`` is ``forbidden`` or one of its submodules."""
    return module == forbidden or module.startswith(forbidden + ".")


def forbidden_paths(modules: list[str]) -> list[str]:
    """Path prefixes of the forbidden modules' code, found without importing them: a package's
    folder (``.../pkg/``), a module's source (``.../mod.py``) and its bytecode
    (``.../__pycache__/mod.``)."""
    import importlib.util

    paths = []
    for mod in modules:
        top, *rest = mod.split(".")
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            continue
        for base in spec.submodule_search_locations:
            stem = os.path.realpath(os.path.join(base, *rest))
            if os.path.isdir(stem):
                paths.append(stem + os.sep)
            elif os.path.exists(stem + ".py"):
                head, name = os.path.split(stem)
                paths += [stem + ".py", os.path.join(head, "__pycache__", name + ".")]
    return paths


# ----------------------------------------------------------------------------- sandbox side


def install_hook(fd: int, modules: list[str], paths: list[str]) -> None:
    """Report imports of ``modules`` and opens under ``paths`` to ``fd`` (append-only, immediate).

    The hook uses only names bound here, before student code runs: nothing it calls can be
    patched from the student's namespace."""
    write, realpath, fspath = os.write, os.path.realpath, os.fspath
    prefixes = tuple(m + "." for m in modules)
    mods, roots = frozenset(modules), tuple(paths)
    imported, opened = Kind.IMPORT.value + " ", Kind.OPEN.value + " "

    def hook(event, args):
        if event == "import":
            name = args[0]
            if isinstance(name, str) and (name in mods or name.startswith(prefixes)):
                write(fd, (imported + name + "\n").encode())
        elif event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            try:
                p = realpath(fspath(args[0]))
                p = p.decode() if isinstance(p, bytes) else p
            except Exception:
                return
            if p.startswith(roots):
                write(fd, (opened + p + "\n").encode())

    import sys

    sys.addaudithook(hook)


def send(fd: int, event: Event) -> None:
    os.write(fd, event.encode())


# ----------------------------------------------------------------------------- grader side


def read_events(lines: list[str]) -> list[Event]:
    """One event per line of the channel (NOISE where a line is none)."""
    return [Event.decode(line) for line in lines]


def completed(events: list[Event]) -> bool:
    """The sandbox reported its start and its end, and nothing after the end."""
    return START in events and events[-1] == END


def forbidden_use(events: list[Event], forbidden: tuple[str, ...] | list[str]) -> str | None:
    """What student code did with a ``forbidden`` module after START (None: nothing)."""
    paths = tuple(forbidden_paths(list(forbidden)))
    started = False
    for e in events:
        if e.kind is Kind.START:
            started = True
        elif started and e.kind is Kind.IMPORT and any(module_matches(e.detail, f) for f in forbidden):
            return f"your code imported {e.detail}"
        elif started and e.kind is Kind.OPEN and paths and e.detail.startswith(paths):
            return "your code read the source of " + ", ".join(forbidden)
    return None
