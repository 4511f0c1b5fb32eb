"""The ``glassgrad`` command line.

Each subcommand lives in its own module here, with ``add_parser(subparsers)`` that
registers it and sets ``func`` (called with the parsed arguments, returning an exit code).
To add a command, write the module and list it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# module names under glassgrad.cli, in the order --help lists them
COMMANDS = ["ops", "train", "explain", "diagnose", "experiment"]


class CLIError(Exception):
    """A user error: printed as 'glassgrad: error: ...' with exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="glassgrad",
        description="Backpropagation for real, and made visible.",
    )
    parser.add_argument("--version", action="version", version=f"glassgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CLIError as e:
        print(f"glassgrad: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`glassgrad ops | head`): not an error of ours. Point stdout at
        # devnull so Python's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # python -m glassgrad.cli
    sys.exit(main())
