"""Device selection and threading: the only place that decides where tensors live.

``resolve_device('auto')`` picks CUDA when it is available and the CPU otherwise. ``set_threads(1)`` is the
default for every script: on the small shared CPUs this project runs on, more intra-op threads make the many
small per-step matmuls slower, not faster (see the performance notes); use cores by running independent
experiments as separate processes instead.
"""

from __future__ import annotations

import torch

from sccl.core.errors import ConfigError


DEVICE_CHOICES = ("cpu", "cuda", "auto")


def resolve_device(name: str) -> torch.device:
    """``'cpu'``, ``'cuda'`` (or ``'cuda:N'``) or ``'auto'`` (CUDA if available, else CPU) -> ``torch.device``.

    Asking for CUDA on a machine without a usable CUDA device raises :class:`ConfigError`.
    """
    if isinstance(name, torch.device):
        name = str(name)
    key = str(name).strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda" or key.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: CUDA is not available here (torch {torch.__version__}, "
                f"built with CUDA: {torch.version.cuda or 'no'}); use --device cpu or --device auto"
            )
        dev = torch.device(key)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return dev
    raise ConfigError(f"--device must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {name!r}")


def set_threads(n: int = 1) -> None:
    """Set the number of intra-op CPU threads (``torch.set_num_threads``); 1 is the recommended default."""
    n = int(n)
    if n < 1:
        raise ConfigError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)
