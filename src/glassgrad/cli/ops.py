"""``glassgrad ops``: every primitive of the op table with its derivative, from the table."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ops", help="list every differentiable primitive with its derivative")
    p.add_argument("--why", action="store_true", help="also say why an op is a primitive")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ops import OPS

    width = max(len(n) for n in OPS)
    for name, op in OPS.items():
        print(f"{name:<{width}}  {op.formula}")
        if args.why and op.why:
            print(f"{'':<{width}}  why a primitive: {op.why}")
    return 0
