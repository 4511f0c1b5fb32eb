"""``glassgrad.utils``: PyTorch's ``torch.utils`` names; ``utils.data`` holds datasets and
``DataLoader``."""

from . import data

__all__ = ["data"]
