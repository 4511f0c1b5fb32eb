"""``glassgrad explain``: backpropagation shown step by step, for an expression or a network.

    glassgrad explain expr "(x + y) * z" --values x=-2,y=5,z=-4
    glassgrad explain net --layers 2-3-1 --activation identity --init constant:1 --lr 0.1 \\
        --input 0,0 --target 0 --loss half-sse [--update weights]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from . import CLIError
from .validate import non_negative, os_error, output_file, positive_int, precision

FORMATS = ("text", "markdown", "html", "json", "dot", "latex", "svg", "png")
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
UPDATE = {"all": (), "weights": ("bias",), "biases": ("weight",)}  # --update -> freeze


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="show backpropagation step by step (expr or net)",
                       description="Show the forward and backward pass step by step, with "
                                   "every local derivative, product and weight update.")
    kinds = p.add_subparsers(dest="what", metavar="{expr,net}")
    kinds.required = True

    e = kinds.add_parser("expr", help="trace an expression, op by op",
                         description="Trace an expression op by op: values forward, then "
                                     "upstream × local derivative backward.")
    e.add_argument("expression", help='e.g. "(x + y) * z" or "q = x + y; f = q * z"')
    e.add_argument("--values", required=True, metavar="NAME=V,...",
                   help="a value for every variable, e.g. x=-2,y=5,z=-4")
    _common(e)
    e.set_defaults(func=run_expr)

    n = kinds.add_parser("net", help="trace a network layer by layer (textbook notation)",
                         description="Trace gradient-descent steps of a Linear+activation "
                                     "network in textbook notation: z, a, δ, ∂L/∂W, update.")
    n.add_argument("--layers", metavar="2-3-1", help="layer sizes (inferred from --weights)")
    n.add_argument("--activation", default="tanh", choices=ACTIVATIONS,
                   help="activation of every layer (default tanh)")
    n.add_argument("--output-activation", choices=ACTIVATIONS,
                   help="activation of the output layer (default: --activation; identity for "
                        "ce, which takes logits; sigmoid for bce)")
    n.add_argument("--init", default="xavier",
                   help="constant:V, normal, uniform, xavier, kaiming (default xavier)")
    n.add_argument("--seed", type=int, default=0, help="seed of a random init (default 0)")
    n.add_argument("--weights", metavar="FILE.json",
                   help='every weight and bias: {"layers": [{"weight": [[...]], "bias": '
                        '[...]}, ...]}, weight as (out, in)')
    n.add_argument("--lr", default=0.1, help="learning rate α (default 0.1)",
                   type=non_negative("lr", "a negative learning rate climbs the loss", "0.1"))
    n.add_argument("--input", required=True, metavar="0,0",
                   help="one sample, or several separated by ';' (a batch)")
    n.add_argument("--target", required=True, metavar="0",
                   help="its target(s), samples separated by ';' (class index for ce)")
    n.add_argument("--loss", default="half-sse", choices=("half-sse", "mse", "bce", "ce"),
                   help="half-sse = ½Σ(ŷ − y)² (the seeds'), mse, bce, ce (default half-sse)")
    n.add_argument("--steps", type=positive_int, default=1,
                   help="gradient-descent steps (default 1)")
    n.add_argument("--update", default="all", choices=tuple(UPDATE),
                   help="what a step changes: all (default), weights (biases frozen, as many "
                        "textbook examples do) or biases")
    _common(n)
    n.set_defaults(func=run_net)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="text", choices=FORMATS, help="output format")
    p.add_argument("--output", "-o", metavar="PATH", type=output_file,
                   help="write to a file instead of stdout (its folder must exist)")
    p.add_argument("--all", action="store_true",
                   help="show every unit and step (large traces are summarized)")
    p.add_argument("--precision", type=precision, default=6,
                   help="significant digits, 1 to 17 (default 6)")


# --------------------------------------------------------------------------- expr
def run_expr(args: argparse.Namespace) -> int:
    from ..explain import ExprError, explain_expr

    try:
        tr = explain_expr(args.expression, args.values)
    except ExprError as e:
        raise CLIError(str(e)) from None
    return _emit(tr, args)


# --------------------------------------------------------------------------- net
def _rows(text: str, what: str) -> np.ndarray:
    try:
        rows = [[float(v) for v in r.split(",") if v.strip()] for r in text.split(";")
                if r.strip()]
    except ValueError:
        raise CLIError(f"cannot read --{what} {text!r}: give numbers separated by ',' and "
                       f"samples separated by ';', e.g. 0,0;0,1") from None
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise CLIError(f"--{what} {text!r}: every sample needs the same number of values "
                       f"(samples separated by ';')")
    return np.array(rows)


def _values(a: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in a[:5]) + (", ..." if a.size > 5 else "")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(",", "-").split("-")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise CLIError(f"--layers {text!r}: give at least two positive sizes separated by "
                       f"'-', e.g. 2-3-1 (2 inputs, 3 hidden units, 1 output)")
    return sizes


def _read_weights(path: str, sizes: list[int] | None) -> tuple[list[int], list[tuple]]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise CLIError(f"cannot read --weights {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CLIError(f"--weights {path} is not UTF-8 text (byte {e.object[e.start]:#x} at "
                       f"position {e.start}), so not a JSON file. Fix: give the JSON file of "
                       f"weights, not a binary one (a .safetensors checkpoint is for diagnose)"
                       ) from None
    except json.JSONDecodeError as e:
        raise CLIError(f"--weights {path} is not valid JSON: {e}") from None
    layers = doc.get("layers") if isinstance(doc, dict) else doc
    if not isinstance(layers, list) or not layers:
        raise CLIError(f'--weights {path}: expected {{"layers": [{{"weight": [[...]], '
                       f'"bias": [...]}}, ...]}}, one entry per Linear layer')
    params = []
    for i, ly in enumerate(layers, 1):
        w = ly.get("weight", ly.get("W")) if isinstance(ly, dict) else None
        b = ly.get("bias", ly.get("b")) if isinstance(ly, dict) else None
        try:
            W = np.array(w, dtype=np.float64)
            B = None if b is None else np.array(b, dtype=np.float64)
        except (TypeError, ValueError):
            W = np.zeros(0)
            B = None
        if w is None or W.ndim != 2:
            raise CLIError(f"--weights {path}: layer {i} needs a 'weight' matrix (a list of "
                           f"rows, shape (out, in))")
        if B is not None and B.shape != (W.shape[0],):
            raise CLIError(f"--weights {path}: layer {i} has weight shape {W.shape} (out, in) "
                           f"so its bias needs {W.shape[0]} values, got shape {B.shape}")
        params.append((W, B))
    found = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    for i in range(1, len(params)):
        if params[i][0].shape[1] != params[i - 1][0].shape[0]:
            raise CLIError(f"--weights {path}: layer {i} has {params[i - 1][0].shape[0]} "
                           f"outputs but layer {i + 1}'s weight has {params[i][0].shape[1]} "
                           f"columns (inputs)")
    if sizes is not None and sizes != found:
        spec = "-".join(map(str, sizes))
        for i, (W, _) in enumerate(params):
            if i + 1 >= len(sizes) or W.shape != (sizes[i + 1], sizes[i]):
                want = ((sizes[i + 1], sizes[i]) if i + 1 < len(sizes) else "no such layer")
                raise CLIError(f"--layers {spec} does not match --weights {path}: layer "
                               f"{i + 1} should have weight shape {want} (out, in) but the "
                               f"file gives {W.shape}")
        raise CLIError(f"--layers {spec} has {len(sizes) - 1} layers but --weights {path} "
                       f"gives {len(params)}")
    if len({B is None for _, B in params}) > 1:
        raise CLIError(f"--weights {path}: give a bias for every layer or for none")
    return found, params


def run_net(args: argparse.Namespace) -> int:
    from ..explain import trace_net
    from ..nn import MLP

    sizes = _sizes(args.layers) if args.layers else None
    params = None
    if args.weights:
        sizes, params = _read_weights(args.weights, sizes)
    if sizes is None:
        raise CLIError("give the layer sizes with --layers (e.g. 2-3-1) or every weight with "
                       "--weights FILE.json")
    out_act = args.output_activation or {"ce": "identity", "bce": "sigmoid"}.get(
        args.loss, args.activation)
    try:
        model = MLP(sizes, activation=args.activation, output_activation=out_act,
                    init=args.init if params is None else "constant:0",
                    bias=params is None or params[0][1] is not None, seed=args.seed,
                    dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    if params is not None:
        linears = [m for m in model if hasattr(m, "in_features")]
        for lin, (W, B) in zip(linears, params):
            lin.weight.data = W
            if B is not None:
                lin.bias.data = B
    X = _rows(args.input, "input")
    Y = _rows(args.target, "target")
    if len(Y) != len(X):
        raise CLIError(f"--input has {len(X)} sample(s) but --target has {len(Y)}; give one "
                       f"target per sample (samples separated by ';')")
    if args.loss == "bce" and not np.all((Y >= 0) & (Y <= 1)):
        bad = Y[(Y < 0) | (Y > 1)]
        raise CLIError(f"--loss bce takes targets in [0, 1] (a probability, usually the class "
                       f"0 or 1), got {_values(bad)}: with such a y the loss −[y ln ŷ + (1 − y) "
                       f"ln(1 − ŷ)] has no minimum, so the trace would show meaningless steps. "
                       f"Fix: --target 0 or 1, or --loss mse for other numbers")
    try:
        tr = trace_net(model, X, Y, loss=args.loss, lr=args.lr, steps=args.steps,
                       freeze=UPDATE[args.update])
    except ValueError as e:
        raise CLIError(str(e).removeprefix("explain: ")) from None
    return _emit(tr, args)


# --------------------------------------------------------------------------- output
def _emit(tr: Any, args: argparse.Namespace) -> int:
    from ..explain.picture import render_graph
    from ..explain.render_text import print_trace
    from ..fileio import write_atomic

    fmt, p, show_all = args.format, args.precision, args.all
    if fmt in ("svg", "png"):
        if fmt == "png" and not args.output:
            raise CLIError("--format png writes a binary file: give --output FILE.png")
        try:
            data = render_graph(tr, fmt, args.output, show_all=show_all)
        except (ImportError, RuntimeError) as e:
            raise CLIError(str(e)) from None
        except OSError as e:
            raise os_error(e, args.output) from None
        if not args.output:
            sys.stdout.write(data.decode("utf-8"))
        return 0
    if fmt == "text" and not args.output:
        print_trace(tr, sys.stdout, precision=p, show_all=show_all)
        return 0
    text = {
        "text": lambda: tr.to_text(p, show_all),
        "markdown": lambda: tr.to_markdown(p, show_all),
        "html": lambda: tr.to_html(p, show_all, document=True),  # a page, not a fragment
        "json": lambda: tr.to_json(),
        "dot": lambda: tr.to_dot(),
        "latex": lambda: tr.to_latex(p),
    }[fmt]()
    if args.output:
        try:
            write_atomic(args.output, text)
        except OSError as e:
            raise os_error(e, args.output) from None
    else:
        sys.stdout.write(text)
    return 0
