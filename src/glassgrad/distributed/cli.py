"""``glassgrad train --distributed``: the command run on every rank, rank 0 speaking for all.

Rank 0 prints, shows progress, writes the plots and saves; the others train silently. An error
raised alike on every rank (ranks that disagree, a NaN loss) is printed once, by rank 0, and
every rank exits with the user-error code. An error on one rank only ends the whole job at
once (``MPI_Abort``) with that rank's message, so no rank waits forever for it in an
all-reduce, whether or not the command was started through ``python -m mpi4py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable

from .comm import abort, barrier, init, is_main, rank, world_size

USER_ERROR = 2  # as glassgrad.cli's


def raised_on_every_rank(e: BaseException | None) -> bool:
    """Whether ``e`` (or an exception it was raised from) was raised alike on every rank."""
    seen = set()
    while e is not None and id(e) not in seen:
        if getattr(e, "every_rank", False):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def run_train(args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    """Run ``glassgrad train`` (the function ``run``) as one rank of a data-parallel job."""
    init()
    if world_size() == 1:
        return run(args)
    if is_main():
        print(f"glassgrad train: data-parallel over {world_size()} MPI processes; rank 0 "
              f"prints and saves")
    else:
        args.diagnose = args.diagnose or bool(args.plots)  # same steps as rank 0's
        args.plots = args.save = None
    try:
        with (open(os.devnull, "w") as devnull,
              contextlib.redirect_stdout(sys.stdout if is_main() else devnull)):
            return run(args)
    except Exception as e:
        text = " ".join(str(e).split()) or type(e).__name__
        if raised_on_every_rank(e):
            if is_main():
                print(f"glassgrad: error: {text}", file=sys.stderr, flush=True)
            barrier()  # the message is out before any rank's exit can end the job
            return USER_ERROR
        kind = "" if type(e).__name__ == "CLIError" else f"{type(e).__name__}: "
        print(f"glassgrad: error on rank {rank()} of {world_size()}: {kind}{text} "
              f"(ending every rank)", file=sys.stderr, flush=True)
        abort(USER_ERROR)
        raise  # not reached: abort ends the process
