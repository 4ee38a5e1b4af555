"""Learned success classifier (SERL / HIL-SERL / RoboFuME): camera frames (+ optional proprio) -> P(success).

Trained on episodes whose per-step success label comes from the simulator's check or a person;
classes are sampled 50/50 because successes are rare frames. The reward is sparse: 1 when the
probability clears the threshold (HIL-SERL thresholds at 0.85 and adds a state check).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from robo_reward.device import pick_device, seeded_training, serving_precision
from robo_reward.rewards.base import FrameRewardModel, RewardInputError
from robo_reward.rewards.vision import (
    MultiViewEncoder,
    augment,
    fit_steps,
    load_weights,
    read_net_config,
    save_net_model,
    to_tensor,
)

CLASSIFIER_KIND = "success-classifier"


@dataclass
class SuccessNetConfig:
    cameras: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
    image_size: int = 64
    render: dict | None = None  # how simulated training frames were drawn (RenderSettings); None: camera/video
    feature_dim: int = 128
    state_dim: int = 0  # > 0: proprioception joins the image features
    hidden: int = 256
    threshold: float = 0.5


class SuccessNet(nn.Module):
    def __init__(self, cfg: SuccessNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = MultiViewEncoder(len(cfg.cameras), cfg.feature_dim)
        self.head = nn.Sequential(nn.Linear(cfg.feature_dim + cfg.state_dim, cfg.hidden), nn.GELU(),
                                  nn.Linear(cfg.hidden, 1))

    def forward(self, images: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        features = self.encoder(images)
        if self.cfg.state_dim:
            if state is None:
                raise RewardInputError(f"this classifier also needs the robot state ({self.cfg.state_dim} values)")
            features = torch.cat([features, state], -1)
        return self.head(features).squeeze(-1)


class SuccessClassifier(FrameRewardModel):
    name = CLASSIFIER_KIND

    def __init__(self, net: SuccessNet, device: torch.device, batch_size: int = 256):
        self.net, self.device, self.batch_size = net.to(device).eval(), device, batch_size
        self.cameras = tuple(net.cfg.cameras)
        self.state_width = net.cfg.state_dim  # observation.state values it reads besides its frames
        self.success_threshold = net.cfg.threshold
        self.render_size = (net.cfg.image_size,) * 2
        self.render_settings = net.cfg.render

    @torch.inference_mode()
    def score_frames(self, frames, task, state):
        images = to_tensor(frames, self.net.cfg.image_size, self.device)
        st = None
        if self.net.cfg.state_dim:
            if state is None or np.asarray(state).shape[-1] != self.net.cfg.state_dim:
                got = None if state is None else np.asarray(state).shape
                raise RewardInputError(f"classifier needs state of width {self.net.cfg.state_dim}, got {got}")
            st = torch.as_tensor(np.asarray(state, np.float32), device=self.device)
        with serving_precision(self.device):
            prob = torch.sigmoid(self.net(images, st).float()).cpu().numpy()
        return prob, prob, (prob >= self.success_threshold).astype(np.float32)


@dataclass
class ClassifierTrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    device: str = "auto"


def train_success_classifier(episodes: Sequence, net_cfg: SuccessNetConfig = SuccessNetConfig(),
                             train_cfg: ClassifierTrainConfig = ClassifierTrainConfig(),
                             progress: bool = True) -> tuple[SuccessNet, dict]:
    """`episodes`: LabeledEpisode list (robo_reward.data.episodes). Needs both successful and failed frames."""
    device, rng, gen = seeded_training(train_cfg.device, train_cfg.seed)
    images = torch.cat([to_tensor(e.episode.select(net_cfg.cameras), net_cfg.image_size, torch.device("cpu"))
                        for e in episodes])
    labels = np.concatenate([e.frame_success for e in episodes])
    states = None
    if net_cfg.state_dim:
        if any(e.episode.state is None for e in episodes):
            raise RewardInputError("state_dim > 0 but some episodes carry no state")
        states = torch.from_numpy(np.concatenate([e.episode.state for e in episodes]))
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    if len(positives) == 0 or len(negatives) == 0:
        raise RewardInputError(f"need both success and failure frames; got {len(positives)} success and "
                               f"{len(negatives)} failure frames (record with --keep-going to keep success in view)")
    net = SuccessNet(net_cfg).to(device)
    half = train_cfg.batch_size // 2

    def batch_loss() -> torch.Tensor:  # half success frames, half failure frames
        idx = np.concatenate([rng.choice(positives, half), rng.choice(negatives, train_cfg.batch_size - half)])
        x = images[idx]
        if train_cfg.augment:
            x = augment(x, gen)
        st = None if states is None else states[idx].to(device)
        target = torch.from_numpy(labels[idx].astype(np.float32)).to(device)
        return nn.functional.binary_cross_entropy_with_logits(net(x.to(device), st), target)

    curve = fit_steps(net, train_cfg.steps, train_cfg.lr, train_cfg.weight_decay, batch_loss,
                      "train success classifier", progress)
    log = {"loss": curve, "frames": int(len(labels)), "positive_frames": int(len(positives))}
    return net.eval(), log


def save_success_classifier(out: str | Path, net: SuccessNet, train_log: dict | None = None,
                            overwrite: bool = False, demo_seeds: Iterable[int] = ()) -> Path:
    return save_net_model(out, CLASSIFIER_KIND, net, train_log, overwrite, demo_seeds)


def load_success_classifier(path: str | Path, device: str = "auto") -> SuccessClassifier:
    net_cfg = read_net_config(path, CLASSIFIER_KIND, SuccessNetConfig, "success-classifier")
    torch_device = pick_device(device)
    net = SuccessNet(net_cfg)
    load_weights(path, net, torch_device)
    return SuccessClassifier(net, torch_device)
