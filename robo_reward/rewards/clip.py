"""CLIP zero-shot reward (VLM-RM, Rocamonde et al. 2023) with open_clip.

x, g, b = unit embeddings of the frame, the goal prompt and a baseline prompt; d = g - b;
P = alpha d d^T / |d|^2 + (1 - alpha) I;  R = 1 - 0.5 |(x - g) P|^2.
Progress in [0, 1] is R rescaled between a low and a high calibration point (by default R at the
baseline prompt's embedding and 1, the value at the goal); `calibrate` fits them on frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robo_reward.device import pick_device, serving_precision
from robo_reward.rewards.base import FrameRewardModel, RewardModelError


@dataclass
class ClipRewardConfig:
    model: str = "ViT-B-32"  # open_clip architecture, a local directory (open_clip_config.json + weights), or hf-hub:ORG/NAME
    pretrained: str | None = "laion2b_s34b_b79k"  # tag (hub cache) or weights file; only for architecture names
    camera: str = "agentview"
    goal_prompt: str | None = None  # default: the episode's task text
    baseline_prompt: str = "a robot arm and an object on a table"
    alpha: float = 0.5  # VLM-RM's goal-baseline regularization strength
    progress_low: float | None = None  # R mapped to progress 0 (default: R at the baseline embedding)
    progress_high: float = 1.0  # R mapped to progress 1 (R at the goal embedding is exactly 1)
    success_threshold: float = 0.9  # on progress
    batch_size: int = 64
    device: str = "auto"


def load_open_clip(model: str, pretrained: str | None, device: torch.device):
    """open_clip's own loader: a directory becomes 'local-dir:', names take a tag or weights file."""
    import open_clip

    name = model
    if Path(model).is_dir():
        name, pretrained = f"local-dir:{Path(model).resolve()}", None
    # fp32 weights everywhere, run in serving_precision: open_clip's own precision="fp16" halves only some
    # layers, so an input cast to one layer's dtype missed another's (CLIP crashed on CUDA)
    try:
        clip, _, _ = open_clip.create_model_and_transforms(name, pretrained=pretrained, precision="fp32",
                                                            device=device, weights_only=True)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # missing weights without hub access, bad config, unknown name
        raise RewardModelError(
            f"cannot load open_clip model {model!r} (pretrained={pretrained!r}): {type(exc).__name__}: {exc}. "
            "Without hub access, pass a local directory with open_clip_config.json and weights, "
            "or a weights file as pretrained."
        ) from exc
    return clip.eval(), tokenizer


class ClipReward(FrameRewardModel):
    name = "clip"

    def __init__(self, config: ClipRewardConfig = ClipRewardConfig()):
        if not 0.0 <= config.alpha <= 1.0:
            raise RewardModelError(f"alpha must be in [0, 1], got {config.alpha}")
        self.config = config
        self.cameras = (config.camera,)
        self.batch_size = config.batch_size
        self.success_threshold = config.success_threshold
        self.device = pick_device(config.device)
        self.clip, self.tokenizer = load_open_clip(config.model, config.pretrained, self.device)
        pre = self.clip.visual.preprocess_cfg
        self.image_size = tuple(pre["size"]) if isinstance(pre["size"], (tuple, list)) else (pre["size"],) * 2
        self.mean = torch.tensor(pre["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre["std"], device=self.device).view(1, 3, 1, 1)
        self._prompts: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with serving_precision(self.device):
            return F.normalize(self.clip.encode_text(tokens).float(), dim=-1)

    @torch.inference_mode()
    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> unit embeddings; open_clip's preprocessing (shortest-side bicubic
        resize, centre crop, normalize) done batched on the device instead of per-PIL-image."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        scale = max(self.image_size[0] / h, self.image_size[1] / w)
        size = (max(self.image_size[0], round(h * scale)), max(self.image_size[1], round(w * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (size[0] - self.image_size[0]) // 2, (size[1] - self.image_size[1]) // 2
        x = x[..., top:top + self.image_size[0], left:left + self.image_size[1]]
        x = (x - self.mean) / self.std
        with serving_precision(self.device):
            return F.normalize(self.clip.encode_image(x).float(), dim=-1)

    def _goal_baseline(self, task: str) -> tuple[torch.Tensor, torch.Tensor, float]:
        goal = self.config.goal_prompt or task
        if goal not in self._prompts:
            g, b = self.embed_text([goal, self.config.baseline_prompt])
            low = self.config.progress_low
            if low is None:
                low = float(self.regularized_reward(b[None], g, b)[0])
            self._prompts[goal] = (g, b, low)
        return self._prompts[goal]

    def regularized_reward(self, x: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """R = 1 - 0.5 |(x - g) P|^2 for a batch of unit embeddings x (N, D)."""
        d = g - b
        d_hat = d / d.norm().clamp_min(1e-8)
        diff = x - g
        projected = (1 - self.config.alpha) * diff + self.config.alpha * (diff @ d_hat)[:, None] * d_hat
        return 1.0 - 0.5 * projected.pow(2).sum(-1)

    def score_frames(self, frames, task, state):
        g, b, low = self._goal_baseline(task)
        reward = self.regularized_reward(self.embed_images(frames[0]), g, b).cpu().numpy()
        span = max(self.config.progress_high - low, 1e-6)
        progress = np.clip((reward - low) / span, 0.0, 1.0)
        return progress, progress, reward

    def calibrate(self, low_frames: np.ndarray, high_frames: np.ndarray, task: str) -> None:
        """Set the progress scale from frames known to be at the start (low) and at the goal (high)."""
        g, b, _ = self._goal_baseline(task)
        low = float(self.regularized_reward(self.embed_images(low_frames), g, b).mean())
        high = float(self.regularized_reward(self.embed_images(high_frames), g, b).mean())
        if high <= low:
            raise RewardModelError(f"calibration failed: goal frames score {high:.4f} <= start frames {low:.4f}; "
                                   "this CLIP model does not separate them for this prompt")
        self.config.progress_low, self.config.progress_high = low, high
        self._prompts.clear()
