"""Neural-network building blocks with PyTorch's conventions.

``Module``/``Parameter`` (module.py), layers (layers.py), activation modules (activations.py),
``MLP`` (mlp.py), arbitrary connectivity ``Graph`` (graph.py), losses and penalties
(functional.py, losses.py), initializers (init.py). See README.md in this folder.
"""

from __future__ import annotations

from . import functional, init, utils
from .activations import (
    ELU,
    Hardtanh,
    Identity,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softmin,
    Softplus,
    Tanh,
)
from .containers import ModuleDict, ModuleList
from .graph import Graph
from .layers import Dropout, Flatten, Linear, Sequential, Unflatten
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HalfSSELoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from .mlp import MLP
from .module import IncompatibleKeys, Module, Parameter, RemovableHandle

DAG = Graph  # the other name people look for

__all__ = [
    "DAG", "ELU", "MLP", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout",
    "Flatten", "Graph", "HalfSSELoss", "Hardtanh", "HuberLoss", "Identity", "IncompatibleKeys",
    "L1Loss", "LeakyReLU", "Linear", "LogSigmoid", "LogSoftmax", "MSELoss", "Mish", "Module",
    "ModuleDict", "ModuleList", "NLLLoss", "Parameter", "ReLU", "ReLU6", "RemovableHandle",
    "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Softmin", "Softplus", "Tanh",
    "Unflatten", "functional", "init", "utils",
]
