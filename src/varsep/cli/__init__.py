"""The ``varsep`` command line: one dispatch table, one small module per command.

Each command module defines ``HELP`` (one line for ``varsep --help``), ``add_arguments(parser)`` and
``run(args, settings)`` (``settings``: the ``--section.key value`` pairs after the command's own options,
for the commands that set ``TAKES_SETTINGS``). Command modules import the heavy parts of varsep (torch,
Lightning, data libraries) inside ``run``, so ``varsep --help``, ``--version`` and config errors answer at
once. Errors meant for users (:class:`varsep.errors.VarsepError`) and bad arguments print as one line,
exit code 2. A run stopped by a signal (:class:`varsep.errors.Interrupted`) exits with 128 + the signal's
number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM; Ctrl-C in any other command exits 130 with one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from varsep.allocator import keep_freed_memory
from varsep.errors import Interrupted, VarsepError

DESCRIPTION = ("Spatiotemporal forecasting by separation of variables (Dona et al., ICLR 2021): simulate and "
               "prepare data sets, train, evaluate, compare and forecast.")
# command → module (in the order --help lists them)
COMMANDS = {
    "demo": "varsep.cli.demo",
    "generate": "varsep.cli.generate",
    "prepare": "varsep.cli.prepare",
    "fit": "varsep.cli.fit",
    "evaluate": "varsep.cli.evaluate",
    "report": "varsep.cli.report",
    "ablate": "varsep.cli.ablate",
    "compare": "varsep.cli.compare",
    "import-weights": "varsep.cli.import_weights",
    "predict": "varsep.cli.predict",
}


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (what is wrong, where to look) rather than the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings meant for users, as one line each (not Python's file:line: Category: form)."""
    print(f"warning: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="varsep", description=DESCRIPTION,
                     epilog="every command has --help; docs: README.md and docs/")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP,
                                 epilog=getattr(module, "EPILOG", None))
        module.add_arguments(command)
        command.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # before any command module is imported
        from varsep import __version__

        print(__version__)
        return 0
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as done:  # --help (0) or a bad argument (2, its one line already printed)
        return done.code if isinstance(done.code, int) else 2
    if args.version:
        from varsep import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    module = args.module
    if extra and not getattr(module, "TAKES_SETTINGS", False):
        print(f"error: varsep {args.command}: unrecognized arguments: {' '.join(extra)} "
              f"(see varsep {args.command} --help)", file=sys.stderr)
        return 2
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    keep_freed_memory()  # every command that computes reuses its large tensors (varsep.allocator)
    try:
        module.run(args, extra)
    except VarsepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(str(stop), file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print(f"interrupted (Ctrl-C): varsep {args.command} stopped; files it was writing may be incomplete",
              file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
    return 0


if __name__ == "__main__":
    sys.exit(main())
