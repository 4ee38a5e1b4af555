"""Bradley-Terry reward model from human preferences (Christiano et al. 2017, the RLHF recipe).

A per-frame reward r(s) from camera frames; an episode's return is the mean of r over frames sampled
through it (mean, not sum: recorded episodes differ in length); P(A preferred over B) =
sigmoid(R_A - R_B), trained with cross-entropy on the labels (1 / 0, and 0.5 for "equal").
Progress in [0, 1] is r rescaled by the 5th / 95th percentile of r on the training frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robo_reward.device import pick_device, seeded_training, serving_precision
from robo_reward.rewards.base import (
    Episode,
    FrameRewardModel,
    RewardInputError,
    subsample_indices,
)
from robo_reward.rewards.vision import (
    MultiViewEncoder,
    augment,
    fit_steps,
    load_weights,
    read_net_config,
    save_net_model,
    to_tensor,
)

BT_KIND = "bradley-terry"


@dataclass
class FrameRewardNetConfig:
    cameras: tuple[str, ...] = ("agentview",)
    image_size: int = 64
    render: dict | None = None  # how simulated training frames were drawn (RenderSettings); None: camera/video
    feature_dim: int = 128
    hidden: int = 128
    reward_low: float = 0.0  # progress 0 (set from the training frames after training)
    reward_high: float = 1.0  # progress 1


class FrameRewardNet(nn.Module):
    def __init__(self, cfg: FrameRewardNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = MultiViewEncoder(len(cfg.cameras), cfg.feature_dim)
        self.head = nn.Sequential(nn.Linear(cfg.feature_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images)).squeeze(-1)


class BradleyTerryReward(FrameRewardModel):
    name = BT_KIND
    success_threshold = 0.95  # progress near the top of what preferred episodes reached

    def __init__(self, net: FrameRewardNet, device: torch.device, batch_size: int = 256):
        self.net, self.device, self.batch_size = net.to(device).eval(), device, batch_size
        self.cameras = tuple(net.cfg.cameras)
        self.render_size = (net.cfg.image_size,) * 2
        self.render_settings = net.cfg.render

    @torch.inference_mode()
    def score_frames(self, frames, task, state):
        images = to_tensor(frames, self.net.cfg.image_size, self.device)
        with serving_precision(self.device):
            r = self.net(images).float().cpu().numpy()
        cfg = self.net.cfg
        progress = np.clip((r - cfg.reward_low) / max(cfg.reward_high - cfg.reward_low, 1e-6), 0.0, 1.0)
        return progress, progress, r


@dataclass
class BTTrainConfig:
    steps: int = 400
    pairs_per_step: int = 8
    frames_per_episode: int = 16  # sampled evenly, the last frame always included
    lr: float = 3e-4
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    device: str = "auto"


def train_bradley_terry(pairs: Sequence[tuple[Episode, Episode, float]], net_cfg: FrameRewardNetConfig,
                        train_cfg: BTTrainConfig = BTTrainConfig(),
                        progress: bool = True) -> tuple[FrameRewardNet, dict]:
    """`pairs`: (episode A, episode B, P(A preferred)) with P in {0, 0.5, 1}."""
    if not pairs:
        raise RewardInputError("Bradley-Terry training needs at least one labeled pair")
    device, rng, gen = seeded_training(train_cfg.device, train_cfg.seed)
    cache: dict[int, torch.Tensor] = {}

    def frames(e: Episode) -> torch.Tensor:  # (F, V, 3, H, W) on the CPU, decoded once per episode
        if id(e) not in cache:
            idx = subsample_indices(e.length, train_cfg.frames_per_episode)
            cache[id(e)] = to_tensor([v[idx] for v in e.select(net_cfg.cameras)], net_cfg.image_size,
                                     torch.device("cpu"))
        return cache[id(e)]

    data = [(frames(a), frames(b), float(p)) for a, b, p in pairs]
    net = FrameRewardNet(net_cfg).to(device)

    def batch_loss() -> torch.Tensor:
        batch = [data[i] for i in rng.integers(0, len(data), train_cfg.pairs_per_step)]
        clips = [c for a, b, _ in batch for c in (a, b)]
        sizes = [len(c) for c in clips]
        x = torch.cat(clips)
        if train_cfg.augment:
            x = augment(x, gen)
        returns = torch.stack([r.mean() for r in net(x.to(device)).split(sizes)])  # one forward for the batch
        logits = returns[0::2] - returns[1::2]
        target = torch.tensor([p for _, _, p in batch], device=device)
        return nn.functional.binary_cross_entropy_with_logits(logits, target)

    curve = fit_steps(net, train_cfg.steps, train_cfg.lr, train_cfg.weight_decay, batch_loss,
                      "train Bradley-Terry reward", progress, log_every=25)
    log = {"loss": curve, "pairs": len(pairs)}
    net.eval()
    with torch.inference_mode():
        r = torch.cat([net(c.to(device)) for c in cache.values()]).float().cpu().numpy()
    net.cfg.reward_low, net.cfg.reward_high = (float(x) for x in np.percentile(r, [5, 95]))
    return net, log


def save_bradley_terry(out: str | Path, net: FrameRewardNet, train_log: dict | None = None,
                       overwrite: bool = False, demo_seeds: Iterable[int] = ()) -> Path:
    return save_net_model(out, BT_KIND, net, train_log, overwrite, demo_seeds)


def load_bradley_terry(path: str | Path, device: str = "auto") -> BradleyTerryReward:
    net_cfg = read_net_config(path, BT_KIND, FrameRewardNetConfig, "Bradley-Terry reward")
    torch_device = pick_device(device)
    net = FrameRewardNet(net_cfg)
    load_weights(path, net, torch_device)
    return BradleyTerryReward(net, torch_device)
