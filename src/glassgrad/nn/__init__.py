"""Neural-network building blocks with PyTorch's conventions.

``Module``/``Parameter`` (module.py), layers (layers.py), activation modules (activations.py),
``MLP`` (mlp.py), arbitrary connectivity ``Graph`` (graph.py), losses and penalties
(functional.py, losses.py), initializers (init.py); convolution, pooling, normalization and
embedding layers (conv.py, pool.py, norm.py, embedding.py) with their functions in
functional_conv.py (also reachable as ``nn.functional.conv2d`` etc.). See README.md.
"""

from __future__ import annotations

from . import functional, functional_conv, init, utils
from .activations import (
    ELU,
    GELU,
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
from .conv import Conv2d, Dropout2d
from .embedding import Embedding
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
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

DAG = Graph  # the other name people look for

# PyTorch's F.conv2d, F.max_pool2d, ...: the functions live in functional_conv.py (their
# own file), and are also reachable under nn.functional as PyTorch code expects
for _name in functional_conv.__all__:
    setattr(functional, _name, getattr(functional_conv, _name))

__all__ = [
    "DAG", "ELU", "MLP", "AdaptiveAvgPool2d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss",
    "BatchNorm1d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout", "Dropout2d",
    "Embedding", "GELU", "Flatten", "Graph", "HalfSSELoss", "Hardtanh", "HuberLoss", "Identity",
    "IncompatibleKeys", "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "LogSigmoid",
    "LogSoftmax", "MSELoss", "MaxPool2d", "Mish", "Module", "ModuleDict", "ModuleList",
    "NLLLoss", "Parameter", "ReLU", "ReLU6", "RemovableHandle", "Sequential", "SiLU",
    "Sigmoid", "SmoothL1Loss", "Softmax", "Softmin", "Softplus", "Tanh", "Unflatten",
    "functional", "init", "utils",
]
