"""``glassgrad experiment init``: the Glorot & Bengio (2010) initialization experiment."""

from __future__ import annotations

import argparse

from . import CLIError
from .validate import non_negative, os_error, output_dir, positive_int, whole

step_number = whole(0, "steps count from 0 (the first step, at initialization)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..training.setup import OPTIMIZERS

    p = sub.add_parser(
        "experiment", help="reproduce a finding from the literature on this library",
        description="init: train the same deep network with sigmoid + N(0,1) (the seed "
        "article's wording), sigmoid and tanh + U(±1/√n) (the paper's 'standard' "
        "initialization), sigmoid and tanh + Glorot, and ReLU + He; compare per-layer "
        "gradient norms, saturation and accuracy, and say which of the observations of "
        "Glorot & Bengio (2010) this run reproduces. Batches are full-size (drop_last).",
    )
    p.add_argument("name", choices=["init"], help="which experiment")
    p.add_argument("--depth", type=positive_int, default=5, help="hidden layers (default 5)")
    p.add_argument("--width", type=positive_int, default=64,
                   help="units per hidden layer (default 64)")
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", default=0.1,
                   type=non_negative("lr", "a negative learning rate climbs the loss", "0.1"))
    p.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS))
    p.add_argument("--dataset", default="digits", choices=["digits", "spirals", "blobs"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-step", type=step_number, default=0, metavar="STEP",
                   help="the step whose per-layer activation and gradient histograms are "
                   "kept and plotted (default 0: at initialization, as the paper's figures)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny version (300 samples, at most 6 epochs, width 32) that runs "
                   "in seconds")
    p.add_argument("--plots", metavar="DIR", default=None, type=output_dir,
                   help="write PNG plots to DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..diagnose.experiment import run_init_experiment, save_experiment_plots

    try:
        result = run_init_experiment(
            depth=args.depth, width=args.width, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, optimizer=args.optimizer, dataset=args.dataset, seed=args.seed,
            quick=args.quick, snapshot_step=args.snapshot_step)
    except (ValueError, ImportError) as e:
        raise CLIError(str(e)) from None
    print(result.report())
    if args.plots:
        try:
            written = save_experiment_plots(result, args.plots)
        except OSError as e:
            raise os_error(e, args.plots) from None
        for path in written:
            print(f"wrote {path}")
    return 0
