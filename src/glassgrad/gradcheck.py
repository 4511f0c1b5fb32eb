"""Check analytic gradients against central finite differences, in float64.

For learners checking a hand-derived rule as much as for the op table's tests: on a
mismatch the report names the input, the element, and both numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .autograd import grad as _grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic gradient of some input disagrees with the numeric one."""


def _as_list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, list | tuple) else [x]


def _project(outputs: list[Tensor], vs: list[np.ndarray]) -> Any:
    """Σₖ ⟨outputₖ, vₖ⟩: one scalar whose gradient is the vector-Jacobian product with v."""
    total = None
    for o, v in zip(outputs, vs):
        term = (o * Tensor._wrap(v)).sum()
        total = term if total is None else total + term
    return total


def central_differences(f: Callable[[], float], x: np.ndarray, indices: Iterable[int],
                        eps: float) -> np.ndarray:
    """(f(x + ε·eⱼ) − f(x − ε·eⱼ)) / 2ε for each flat index j of the array ``x``.

    ``f`` reads ``x`` itself: each entry is perturbed in place and restored afterwards.
    """
    if not x.flags.c_contiguous:
        raise ValueError("central_differences: x must be C-contiguous, so that its flat view "
                         "perturbs x itself. Fix: pass np.ascontiguousarray(x) as the input.")
    flat = x.reshape(-1)  # a view: perturbing it perturbs x
    out = []
    for j in indices:
        orig = flat[j]
        flat[j] = orig + eps
        plus = f()
        flat[j] = orig - eps
        minus = f()
        flat[j] = orig
        out.append((plus - minus) / (2 * eps))
    return np.asarray(out, dtype=np.float64)


def gradcheck(
    fn: Callable[..., Any],
    inputs: Tensor | Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """True if ``fn``'s backward agrees with central differences at ``inputs``.

    Every input with ``requires_grad=True`` is copied to float64 and checked; ``fn``'s
    outputs are projected on a fixed random vector v, so what is compared is the
    vector-Jacobian product vᵀJ, element by element: |analytic − numeric| ≤ atol + rtol·|numeric|.

    >>> import glassgrad as gg
    >>> x = gg.tensor([0.5, -1.0], requires_grad=True)
    >>> gg.gradcheck(lambda x: (x * x.sin()).sum(), [x])
    True
    """
    given = _as_list(inputs)
    xs, checked = _float64_inputs(given)
    outputs = _as_list(fn(*xs))
    outputs = [o for o in outputs if isinstance(o, Tensor) and o.requires_grad]
    if not outputs:
        raise ValueError("gradcheck: fn returned no tensor that depends on the inputs")
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(o.shape) for o in outputs]
    analytic = _grad(_project(outputs, vs), [xs[i] for i in checked], allow_unused=True)

    def projected() -> float:
        # Grad mode stays on: fn may itself call gg.grad (checking a second derivative).
        return _project(_as_list(fn(*xs))[: len(outputs)], vs).item()

    failures: list[str] = []
    for i, g in zip(checked, analytic):
        x = xs[i]
        a = np.zeros(x.shape) if g is None else g.numpy()
        num = central_differences(projected, x._data, range(x.numel()), eps).reshape(x.shape)
        failures += _mismatches(f"input {i}{_name(given[i])}", a, num, atol, rtol)
    if failures and raise_exception:
        raise GradcheckError(_message(failures, eps, atol, rtol))
    return not failures


def _float64_inputs(given: list[Any]) -> tuple[list[Any], list[int]]:
    """The inputs, those that require grad copied to float64 leaves; and their positions."""
    xs: list[Any] = []
    checked: list[int] = []
    for i, x in enumerate(given):
        if isinstance(x, Tensor) and x.requires_grad:
            xs.append(Tensor._wrap(x._data.astype(np.float64), requires_grad=True))
            checked.append(i)
        else:
            xs.append(x)
    if not checked:
        raise ValueError(
            "gradcheck: no input has requires_grad=True, so there is nothing to check. "
            "Fix: create the inputs to check with requires_grad=True."
        )
    return xs, checked


def _mismatches(what: str, a: np.ndarray, num: np.ndarray, atol: float,
                rtol: float) -> list[str]:
    """One line per element where ``a`` and ``num`` disagree beyond atol + rtol·|num|."""
    bad = np.abs(a - num) > atol + rtol * np.abs(num)
    return [
        f"  {what} element {tuple(int(t) for t in idx)}: "
        f"numeric {num[idx]:+.8g}  analytic {a[idx]:+.8g}  "
        f"(difference {a[idx] - num[idx]:+.3g})"
        for idx in map(tuple, np.argwhere(bad))  # (np.nonzero refuses 0-d arrays)
    ]


def _message(failures: list[str], eps: float, atol: float, rtol: float) -> str:
    shown = failures[:20]
    if len(failures) > 20:
        shown.append(f"  ... and {len(failures) - 20} more")
    return (
        "gradcheck: the backward pass disagrees with central finite differences "
        f"(eps={eps}, atol={atol}, rtol={rtol}) at {len(failures)} element(s):\n"
        + "\n".join(shown)
        + "\nA consistent factor (e.g. 2 or −1) usually means a missing constant or a sign "
        "error in a hand-written rule; zeros where numbers are expected mean a missing path."
    )


def _name(x: Any) -> str:
    n = getattr(x, "name", None)
    return f" ({n!r})" if n else ""
