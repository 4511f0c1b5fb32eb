"""Optimizers, learning-rate schedules and gradient clipping, as ``torch.optim``.

optimizer.py (the base class), optimizers.py (SGD, Adam, AdamW, RMSprop), schedulers.py (also
reachable as ``optim.lr_scheduler``), clip.py. See README.md in this folder.
"""

from __future__ import annotations

from . import schedulers
from . import schedulers as lr_scheduler
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .optimizers import SGD, Adam, AdamW, RMSprop
from .schedulers import (
    CosineAnnealingLR,
    ExponentialLR,
    LRScheduler,
    ReduceLROnPlateau,
    StepLR,
)

__all__ = [
    "SGD", "Adam", "AdamW", "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "Optimizer",
    "RMSprop", "ReduceLROnPlateau", "StepLR", "clip_grad_norm_", "clip_grad_value_",
    "lr_scheduler", "schedulers",
]
