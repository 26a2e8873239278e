"""The ``deepul`` command (also ``python -m deepul_helpers``).

Each sub-command lives in the module that owns its job; that module defines
``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported only when
their sub-command runs, so ``deepul --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line here when a module gains a sub-command.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("deepul_helpers.demo", "train a small reference model, write samples and curves under out/"),
    "data": ("deepul_helpers.data.cli", "list the course data sets, or draw samples of one"),
    "bench": ("deepul_helpers.bench", "run a family's benchmark and write its table (JSON and PNG)"),
    "release": ("deepul_helpers.autograde.release", "generate homeworks/ (the student release) from solutions/"),
    "autograde": ("deepul_helpers.autograde.cli", "grade submissions in a sandbox: gradebook, feedback, grades.csv"),
    "validate": ("deepul_helpers.autograde.validate", "run a homework notebook's visible checks before submitting"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepul",
        description="Deep Unsupervised Learning course tools.",
        epilog="Run 'deepul COMMAND --help' for the options of one command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        known = ", ".join(COMMANDS)
        print(f"deepul: unknown command {command!r}; known: {known}", file=sys.stderr)
        return 2
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
