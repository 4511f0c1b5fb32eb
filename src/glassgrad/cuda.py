"""``torch.cuda``'s questions, answered for a CPU-only library: no GPU is available.

Programs pick their device with ``"cuda" if torch.cuda.is_available() else "cpu"``; here that
picks the CPU. Seeding the (absent) GPUs does nothing, as in PyTorch without a GPU.
"""

from __future__ import annotations


def is_available() -> bool:
    """False: glassgrad computes with NumPy on the CPU only."""
    return False


def device_count() -> int:
    """0: no GPU."""
    return 0


def manual_seed(seed: int) -> None:
    """Nothing to seed (no GPU); ``gg.manual_seed`` seeds glassgrad's random numbers."""


def manual_seed_all(seed: int) -> None:
    """Nothing to seed (no GPU); ``gg.manual_seed`` seeds glassgrad's random numbers."""
