"""Headless VoxSpace: the same functions the UI calls.

    python -m voxspace data add|import|stats ...
    python -m voxspace train --data REPO_OR_DIR --base-model ID_OR_PATH --out DIR
    python -m voxspace evaluate ...
    python -m voxspace publish ... / python -m voxspace demo ...

Each area registers its own sub-commands below; errors print their user message and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from voxspace.errors import VoxSpaceError

log = logging.getLogger("voxspace")


def _register_data(sub: argparse._SubParsersAction) -> None:
    """`data add|import|stats` (Record issue)."""


def _register_train(sub: argparse._SubParsersAction) -> None:
    """`train` and `evaluate` (Train issue)."""
    from voxspace.train_cli import register

    register(sub)


def _register_publish(sub: argparse._SubParsersAction) -> None:
    """`publish` and `demo` (Publish issue)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m voxspace", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    _register_data(sub)
    _register_train(sub)
    _register_publish(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except VoxSpaceError as e:
        log.debug("command failed", exc_info=True)
        print(f"error: {e.user_message}", file=sys.stderr)
        return 2
