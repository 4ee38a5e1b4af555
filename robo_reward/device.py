"""Device selection: CUDA when present (the serving/learning target), CPU as the fallback."""

from __future__ import annotations

import numpy as np
import torch

from robo_reward.errors import ConfigError


def pick_device(preference: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cpu' / 'cuda' / 'cuda:N' are honoured or rejected clearly."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {preference!r} requested but CUDA is not available on this machine")
    try:
        return torch.device(preference)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {preference!r}: expected auto, cpu, cuda or cuda:N") from exc


def seeded_training(preference: str, seed: int) -> tuple[torch.device, np.random.Generator, torch.Generator]:
    """The device and seeded numpy / torch generators every trainer starts from, so a run repeats from its seed."""
    torch.manual_seed(seed)
    return pick_device(preference), np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def serving_precision(device: torch.device) -> torch.autocast:
    """How every reward model runs its forward pass: fp16 autocast on CUDA (the serving target), plain fp32
    on the CPU. Weights stay fp32 either way, so one checkpoint serves on both."""
    return torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda")
