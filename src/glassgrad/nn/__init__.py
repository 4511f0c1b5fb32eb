"""Neural-network building blocks with PyTorch's conventions.

``Module``/``Parameter`` (module.py), layers (layers.py), activation modules (activations.py),
``MLP`` (mlp.py), arbitrary connectivity ``Graph`` (graph.py), losses and penalties
(functional.py, losses.py), initializers (init.py). See README.md in this folder.
"""

from __future__ import annotations

from . import functional, init, utils
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .graph import Graph
from .layers import Dropout, Linear, Sequential
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HalfSSELoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from .mlp import MLP
from .module import IncompatibleKeys, Module, Parameter, RemovableHandle

DAG = Graph  # the other name people look for

__all__ = [
    "DAG", "MLP", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Graph",
    "HalfSSELoss", "Identity", "IncompatibleKeys", "L1Loss", "LeakyReLU", "Linear", "MSELoss",
    "Module", "NLLLoss", "Parameter", "ReLU", "RemovableHandle", "Sequential", "Sigmoid",
    "Softmax", "Tanh", "functional", "init", "utils",
]
