"""The ``varsep`` command line: one dispatch table, one small module per command.

Each command module defines ``HELP`` (one line for ``varsep --help``), ``add_arguments(parser)`` and
``run(args, settings)`` (``settings``: the ``--section.key value`` pairs after the command's own options,
for the commands that set ``TAKES_SETTINGS``). Command modules import the heavy parts of varsep (torch,
Lightning, data libraries) inside ``run``, so ``varsep --help``, ``--version`` and config errors answer at
once. Errors meant for users (:class:`varsep.errors.VarsepError`) print as one line, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from varsep.errors import VarsepError

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="varsep", description=DESCRIPTION,
                                     epilog="every command has --help; docs: README.md and docs/")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP,
                                 epilog=getattr(module, "EPILOG", None))
        module.add_arguments(command)
        command.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.version:
        from varsep import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    module = args.module
    if extra and not getattr(module, "TAKES_SETTINGS", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        module.run(args, extra)
    except VarsepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
