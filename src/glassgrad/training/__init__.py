"""Training: ``fit`` (the loop), ``History`` (its record), callbacks and progress output.

>>> import glassgrad as gg
>>> X, y = gg.data.xor()
>>> model = gg.nn.MLP([2, 4, 1], activation="tanh", seed=0)
>>> h = gg.fit(model, X, y, loss="bce_with_logits", lr=0.1, epochs=200, verbose=0, seed=0)
>>> h["accuracy"][-1]
1.0
"""

from .callbacks import Callback, EarlyStopping, LambdaCallback, LRSchedulerCallback
from .fit import NonFiniteLossError, Trainer, evaluate, fit
from .history import History
from .progress import Progress

__all__ = [
    "Callback", "EarlyStopping", "History", "LRSchedulerCallback", "LambdaCallback",
    "NonFiniteLossError", "Progress", "Trainer", "evaluate", "fit",
]
