"""``Embedding``: a lookup table of learned vectors, as ``torch.nn.Embedding``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from . import init
from .functional_conv import embedding
from .module import Module, Parameter


class Embedding(Module):
    """Row i of ``weight`` (num_embeddings, embedding_dim) for each integer i of the input.

    Initialized N(0, 1) from ``seed``, as PyTorch, with the row ``padding_idx`` (if given)
    zeroed; that row takes no gradient, so it stays as it is through training.

    >>> import glassgrad as gg
    >>> emb = gg.nn.Embedding(10, 3, padding_idx=0, seed=0)
    >>> emb([[0, 2], [4, 9]]).shape, emb.weight.numpy()[0].tolist()
    ((2, 2, 3), [0.0, 0.0, 0.0])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, seed: int | np.random.Generator | None = None,
                 dtype: Any = np.float32) -> None:
        if num_embeddings < 1 or embedding_dim < 0:
            raise ValueError(f"Embedding: num_embeddings must be >= 1 and embedding_dim >= 0, "
                             f"got ({num_embeddings}, {embedding_dim})")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be within "
                                 f"-{num_embeddings}..{num_embeddings - 1}, got {padding_idx}")
            padding_idx %= num_embeddings  # PyTorch keeps a negative one as counted from 0
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx, self.max_norm = padding_idx, max_norm
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype))
        init.normal_(self.weight, seed=seed)
        if padding_idx is not None:
            self.weight._data[padding_idx] = 0

    def forward(self, indices: Any) -> Tensor:
        return embedding(indices, self.weight, self.padding_idx, self.max_norm)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
