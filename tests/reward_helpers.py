"""Tiny real models and synthetic episodes for reward-model tests (nothing can be downloaded here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def save_tiny_open_clip(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised open_clip model saved the way the hub lays one out (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    model = open_clip.CLIP(**TINY_CLIP_CFG)
    config = {"model_cfg": TINY_CLIP_CFG,
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711]}}
    (directory / "open_clip_config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "open_clip_model.safetensors"))
    return directory


def moving_square_frames(length: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """A bright square sliding left to right: progress is visible in the pixels."""
    rng = np.random.default_rng(seed)
    frames = np.full((length, size, size, 3), 40, np.uint8)
    frames += rng.integers(0, 10, frames.shape, dtype=np.uint8)
    for t in range(length):
        x = int(round(t / max(length - 1, 1) * (size - 8)))
        frames[t, 12:20, x:x + 8] = (230, 30, 30)
    return frames
