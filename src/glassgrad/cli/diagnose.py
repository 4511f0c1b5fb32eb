"""``glassgrad diagnose CHECKPOINT DATASET``: gradient check and one monitored epoch.

Loads a model saved with ``glassgrad.save`` (its architecture is in the file's header),
checks every parameter's backprop gradient against finite differences on a few samples,
then trains one epoch on a copy under a ``Monitor`` and prints what the rules find. The
checkpoint on disk is never changed.
"""

from __future__ import annotations

import argparse
import os

from . import CLIError
from .validate import non_negative, os_error, output_dir, positive_int, read_csv

# Rules that need a whole run's loss curve (a trained model barely moves in one epoch, which
# would read as "stalled" or "learning rate too low") are left out here.
_ONE_EPOCH_RULES = ("vanishing", "exploding", "saturation", "dead_units", "lr_too_high")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..training.setup import OPTIMIZERS

    p = sub.add_parser(
        "diagnose", help="check a saved model's gradients and watch it train for one epoch",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("checkpoint", help="a .safetensors file written by glassgrad.save(model, ...)")
    p.add_argument("dataset", help="xor, circles, moons, spirals, blobs, digits, or a CSV path "
                   "(last column = target)")
    p.add_argument("--loss", default=None, help="loss name (default: chosen from the targets, "
                   "as fit does)")
    p.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS),
                   help="optimizer for the monitored epoch (default sgd)")
    p.add_argument("--lr", default=None, help="learning rate for that epoch",
                   type=non_negative("lr", "a negative learning rate climbs the loss", "0.01"))
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--check-samples", type=positive_int, default=32,
                   help="samples used by the gradient check (default 32)")
    p.add_argument("--max-entries", type=positive_int, default=20,
                   help="entries checked per parameter tensor (a seeded sample)")
    p.add_argument("--plots", metavar="DIR", default=None, type=output_dir,
                   help="write PNG plots to DIR")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def load_dataset(name: str, seed: int = 0) -> tuple:
    """(X, y) for a data set name of ``glassgrad.data`` or a CSV path."""
    from .. import data

    if name in data.DATASETS:
        fn = data.DATASETS[name]
        try:
            return fn(seed=seed)
        except TypeError:  # load_digits takes no seed
            return fn()
    if os.path.exists(name):
        return read_csv(name)
    raise CLIError(f"unknown data set {name!r}: use one of {sorted(data.DATASETS)} or the "
                   f"path of a CSV file")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import diagnose as dg
    from ..serialization import load_model
    from ..training import fit, setup

    try:
        model = load_model(args.checkpoint)
    except (OSError, ValueError, ImportError) as e:
        raise CLIError(f"cannot load {args.checkpoint!r}: {e}") from None
    X, y = load_dataset(args.dataset, args.seed)
    try:
        X = X.astype(setup.param_dtype(model), copy=False)
        out1 = setup.probe(model, X)
        loss_fn, kind = setup.resolve_loss(args.loss, y, out1, model)
        y_ready = setup.prepare_targets(y, out1, kind, np.dtype(np.float64))
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None

    n = min(args.check_samples, len(X))
    print(f"Gradient check on {n} samples ({kind} loss):")
    report = dg.check_gradients(model, loss_fn, X[:n], y_ready[:n],
                                max_entries=args.max_entries, seed=args.seed, verbose=False)
    print(report)

    print(f"\nOne monitored epoch ({args.optimizer}, batch {args.batch_size}):")
    monitor = dg.Monitor(every=1)  # one epoch: watch every step
    try:
        hist = fit(model, X, y, loss=args.loss or kind, optimizer=args.optimizer, lr=args.lr,
                   epochs=1, batch_size=args.batch_size, callbacks=[monitor], verbose=0,
                   seed=args.seed)
    except FloatingPointError as e:  # NonFiniteLossError: report what was recorded
        monitor.close()
        print(f"training stopped: {e}")
        hist = getattr(e, "history", monitor)
    logs = {k: v[-1] for k, v in getattr(hist, "history", {}).items() if v}
    if logs:
        print("  " + "  ".join(
            f"{k} {100 * v:.1f}%" if k.endswith("accuracy") else f"{k} {v:.4g}"
            for k, v in logs.items()))
    findings = dg.diagnose(monitor, rules=_ONE_EPOCH_RULES)
    if findings:
        print("\n".join(map(str, findings)))
    else:
        print(f"no problems found ({', '.join(_ONE_EPOCH_RULES)} checked).")
    if args.plots:
        try:
            written = dg.plots.save_all(monitor, model, X, y, args.plots)
        except OSError as e:
            raise os_error(e, args.plots) from None
        for path in written:
            print(f"wrote {path}")
    return 0 if report.passed and not findings else 1
