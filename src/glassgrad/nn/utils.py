"""``nn.utils``: gradient clipping under PyTorch's name (``torch.nn.utils.clip_grad_norm_``)."""

from __future__ import annotations

from ..optim.clip import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
