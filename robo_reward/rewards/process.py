"""Robo-Dopamine-style process reward: hop prediction + multi-perspective progress fusion.

hop H(s_p, s_q) in [-1, 1] is the fraction of the *remaining* progress gained (q after p) or of the
*achieved* progress lost (q before p). Progress of a stream is fused from three views of the hop:
incremental (from the previous state), forward (from the start frame) and backward (from the
reference goal frame), optionally gated by their consistency. Progress labels for training come
from step-wise discretization of demonstrations between keyframes.

Any hop predictor plugs in through `HopPredictor.hops(before_views, after_views, task)`: the
trainable `HopNet` below, or a GRM-style VLM checkpoint (robo_reward.rewards.vlm).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn

from robo_reward.device import pick_device, seeded_training, serving_precision
from robo_reward.rewards.base import (
    Episode,
    NoRewardError,
    RewardInputError,
    RewardModelError,
    RewardResult,
    StepScore,
    check_task,
    single_frame,
)
from robo_reward.rewards.vision import (
    MultiViewEncoder,
    TaskEmbedding,
    augment,
    fit_steps,
    frames_config,
    load_weights,
    read_manifest,
    save_model_dir,
    to_tensor,
)

HOP_KIND = "hop"


# --- labels ---------------------------------------------------------------------------------------

def hop_label(phi_p: np.ndarray, phi_q: np.ndarray) -> np.ndarray:
    """H = (Phi_q - Phi_p) / (1 - Phi_p) when progress rises, (Phi_q - Phi_p) / Phi_p when it falls."""
    phi_p, phi_q = np.asarray(phi_p, np.float64), np.asarray(phi_q, np.float64)
    gain = (phi_q - phi_p) / np.maximum(1.0 - phi_p, 1e-8)
    loss = (phi_q - phi_p) / np.maximum(phi_p, 1e-8)
    return np.clip(np.where(phi_q >= phi_p, gain, loss), -1.0, 1.0).astype(np.float32)


def gripper_keyframes(actions: np.ndarray) -> list[int]:
    """Keyframes where the gripper command flips (grasp / release) — the natural stage boundaries of
    pick-and-place demos. Always includes the first and last step."""
    grip = np.sign(np.asarray(actions)[:, -1])
    flips = [int(t) for t in np.flatnonzero(np.diff(grip) != 0) + 1]
    return sorted({0, *flips, len(actions) - 1})


def stepwise_progress(length: int, keyframes: Sequence[int], levels: int = 20) -> np.ndarray:
    """Robo-Dopamine's step-wise discretization: keyframes split the episode into N stages, each
    stage owns an equal share of progress (linear inside it), then quantized to `levels` steps."""
    keys = sorted({0, length - 1, *[int(k) for k in keyframes if 0 <= k < length]})
    if length == 1:
        return np.ones(1, np.float32)
    stages = len(keys) - 1
    phi = np.zeros(length)
    for i, (a, b) in enumerate(zip(keys[:-1], keys[1:])):
        phi[a:b + 1] = (i + np.linspace(0.0, 1.0, b - a + 1)) / stages
    return (np.round(phi * levels) / levels).astype(np.float32)


@dataclass
class PairSampler:
    """Balanced hop sampling: a hop-size bin is drawn uniformly, then a frame-gap bin within it, then a
    pair — so rare large hops and regressions are not drowned by the many near-zero neighbour pairs,
    and each hop size is seen at short and long time gaps alike."""

    progress: Sequence[np.ndarray]  # per demo
    hop_bins: int = 8
    gap_bins: int = 4
    pairs: np.ndarray = field(init=False)  # rows: demo, p, q
    cells: list[list[np.ndarray]] = field(init=False)  # [hop bin][gap bin] -> pair indices

    def __post_init__(self) -> None:
        rows, labels, gaps = [], [], []
        for d, phi in enumerate(self.progress):
            p, q = np.meshgrid(np.arange(len(phi)), np.arange(len(phi)), indexing="ij")
            p, q = p.ravel(), q.ravel()
            rows.append(np.stack([np.full_like(p, d), p, q], 1))
            labels.append(hop_label(phi[p], phi[q]))
            gaps.append(np.abs(q - p) / max(len(phi) - 1, 1))
        self.pairs = np.concatenate(rows)
        self.labels = np.concatenate(labels)
        gap = np.concatenate(gaps)
        hop_bin = np.minimum(((self.labels + 1) / 2 * self.hop_bins).astype(int), self.hop_bins - 1)
        gap_bin = np.minimum((gap * self.gap_bins).astype(int), self.gap_bins - 1)
        self.cells = []
        for h in np.unique(hop_bin):
            in_bin = hop_bin == h
            self.cells.append([np.flatnonzero(in_bin & (gap_bin == g)) for g in np.unique(gap_bin[in_bin])])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = np.empty(n, dtype=np.int64)
        for i, h in enumerate(rng.integers(0, len(self.cells), n)):
            gap_cells = self.cells[h]
            cell = gap_cells[rng.integers(0, len(gap_cells))]
            idx[i] = cell[rng.integers(0, len(cell))]
        return self.pairs[idx], self.labels[idx]


# --- the hop predictor ----------------------------------------------------------------------------

class HopPredictor(Protocol):
    cameras: tuple[str, ...]

    def hops(self, before: Sequence[np.ndarray], after: Sequence[np.ndarray], task: str) -> np.ndarray:
        """H for N (before, after) pairs; each argument is one uint8 (N, H, W, 3) array per camera."""


@dataclass
class HopNetConfig:
    cameras: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
    image_size: int = 64
    render: dict | None = None  # how simulated training frames were drawn (RenderSettings); None: camera/video
    feature_dim: int = 128
    task_dim: int = 32
    hidden: int = 256


class HopNet(nn.Module):
    """Shared multi-view encoder for both states + task embedding -> MLP -> tanh hop."""

    def __init__(self, cfg: HopNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = MultiViewEncoder(len(cfg.cameras), cfg.feature_dim)
        self.task = TaskEmbedding(cfg.task_dim)
        d = cfg.feature_dim
        self.head = nn.Sequential(
            nn.Linear(3 * d + cfg.task_dim, cfg.hidden), nn.LayerNorm(cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, 1),
        )

    def forward(self, before: torch.Tensor, after: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
        both = self.encoder(torch.cat([before, after]))
        fp, fq = both.chunk(2)
        return torch.tanh(self.head(torch.cat([fp, fq, fq - fp, self.task(tasks)], -1))).squeeze(-1)


class TrainedHopPredictor:
    """A HopNet behind the HopPredictor interface (batched, inference mode, fp16 autocast on CUDA)."""

    def __init__(self, net: HopNet, device: torch.device, batch_size: int = 256):
        self.net, self.device, self.batch_size = net.to(device).eval(), device, batch_size
        self.cameras = tuple(net.cfg.cameras)

    @torch.inference_mode()
    def hops(self, before, after, task):
        n = len(before[0])
        out = []
        for start in range(0, n, self.batch_size):
            sl = slice(start, start + self.batch_size)
            b = to_tensor([v[sl] for v in before], self.net.cfg.image_size, self.device)
            a = to_tensor([v[sl] for v in after], self.net.cfg.image_size, self.device)
            with serving_precision(self.device):
                out.append(self.net(b, a, [task] * len(b)).float().cpu().numpy())
        return np.concatenate(out)


# --- fusion ---------------------------------------------------------------------------------------

@dataclass
class FusionConfig:
    use_incremental: bool = True
    use_forward: bool = True
    use_backward: bool = True
    consistency_gate: bool = False
    gate_alpha: float = 2.0  # w = exp(-alpha * Delta^2)
    success_delta: float = 0.05  # success when Phi >= 1 - delta (same delta as r_gold)


def incremental_update(previous: np.ndarray | float, hop: np.ndarray | float) -> np.ndarray:
    previous, hop = np.asarray(previous, np.float64), np.asarray(hop, np.float64)
    return np.where(hop >= 0, previous + (1 - previous) * hop, previous + previous * hop)


def fuse_step(previous: float, hop_incremental: float, hop_forward: float, hop_backward: float,
              cfg: FusionConfig) -> float:
    """One step of multi-perspective fusion; progress of the start frame is 0 by definition."""
    estimates = []
    if cfg.use_incremental:
        estimates.append(float(incremental_update(previous, hop_incremental)))
    phi_f = float(np.clip(hop_forward, 0.0, 1.0))
    phi_b = float(np.clip(1.0 + hop_backward, 0.0, 1.0))
    if cfg.use_forward:
        estimates.append(phi_f)
    if cfg.use_backward:
        estimates.append(phi_b)
    fused = float(np.clip(np.mean(estimates), 0.0, 1.0))
    if cfg.consistency_gate:
        delta = abs(phi_b - phi_f) / ((phi_b + phi_f) / 2 + 1e-6)
        weight = float(np.exp(-cfg.gate_alpha * delta ** 2))
        fused = weight * fused + (1 - weight) * previous
    return fused


class ProcessReward:
    """The RewardModel over any HopPredictor: progress from fused hops, success at Phi >= 1 - delta.
    `reward` is the progress itself; RL rewards come from robo_reward.rewards.shaping."""

    name = "hop"

    def __init__(self, predictor: HopPredictor, goal_frames: Mapping[str, np.ndarray],
                 fusion: FusionConfig | None = None):
        self.predictor = predictor
        self.cameras = tuple(predictor.cameras)
        self.goal = [np.asarray(goal_frames[c])[None] if np.asarray(goal_frames[c]).ndim == 3
                     else np.asarray(goal_frames[c]) for c in self.cameras]
        self.fusion = fusion or FusionConfig()
        net = getattr(predictor, "net", None)
        self.render_size = (net.cfg.image_size,) * 2 if net is not None else None
        self.render_settings = net.cfg.render if net is not None else None

    def goal_like(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The reference goal frames at the resolution of the incoming camera frames."""
        import cv2

        out = []
        for goal, view in zip(self.goal, frames):
            h, w = view.shape[1:3]
            if goal.shape[1:3] != (h, w):
                goal = np.stack([cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA) for g in goal])
            out.append(goal)
        return out

    def _progress(self, hops_inc: np.ndarray, hops_fwd: np.ndarray, hops_bwd: np.ndarray) -> np.ndarray:
        phi = [0.0]
        for t in range(len(hops_inc)):
            phi.append(fuse_step(phi[-1], hops_inc[t], hops_fwd[t], hops_bwd[t], self.fusion))
        return np.asarray(phi, np.float32)

    def score_episode(self, episode: Episode) -> RewardResult:
        views = episode.select(self.cameras)
        if episode.length == 1:
            progress = np.zeros(1, np.float32)
        else:
            n = episode.length - 1
            before = [np.concatenate([v[:-1], np.repeat(v[:1], n, 0), np.repeat(g, n, 0)]) for v, g in
                      zip(views, self.goal_like(views))]
            after = [np.concatenate([v[1:]] * 3) for v in views]
            try:  # one batch: incremental, forward, backward
                hops = self.predictor.hops(before, after, episode.task)
            except NoRewardError as exc:
                return RewardResult.no_reward(str(exc))
            progress = self._progress(hops[:n], hops[n:2 * n], hops[2 * n:])
        return RewardResult(progress=progress, success=progress >= 1 - self.fusion.success_delta, reward=progress)

    def stream(self, task: str) -> "_HopStream":
        return _HopStream(self, check_task(task))


class _HopStream:
    def __init__(self, model: ProcessReward, task: str):
        self.model, self.task = model, task
        self.first: list[np.ndarray] | None = None
        self.previous: list[np.ndarray] | None = None
        self.phi = 0.0

    def reset(self, frames, state=None) -> StepScore:
        views = single_frame(frames, self.model.cameras)
        self.first = self.previous = [views[c] for c in self.model.cameras]
        self.phi = 0.0
        return StepScore(0.0, False, 0.0)

    def step(self, frames, state=None) -> StepScore:
        if self.first is None:
            raise RewardInputError("hop stream: step() before reset()")
        current = [single_frame(frames, self.model.cameras)[c] for c in self.model.cameras]
        goal = self.model.goal_like(current)
        before = [np.concatenate([p, f, g]) for p, f, g in zip(self.previous, self.first, goal)]
        after = [np.concatenate([c] * 3) for c in current]
        try:
            h = self.model.predictor.hops(before, after, self.task)
        except NoRewardError as exc:
            return StepScore(self.phi, False, self.phi, ok=False, error=str(exc))
        self.phi = fuse_step(self.phi, h[0], h[1], h[2], self.model.fusion)
        self.previous = current
        success = self.phi >= 1 - self.model.fusion.success_delta
        return StepScore(self.phi, success, self.phi)


# --- training -------------------------------------------------------------------------------------

@dataclass
class HopTrainConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    levels: int = 20  # progress quantization (step-wise discretization)
    augment: bool = True
    seed: int = 0
    device: str = "auto"


def train_hop_model(demos: Sequence[Episode], net_cfg: HopNetConfig = HopNetConfig(),
                    train_cfg: HopTrainConfig = HopTrainConfig(),
                    keyframes: Sequence[Sequence[int]] | None = None,
                    progress: bool = True) -> tuple[HopNet, dict]:
    """Adapt a hop model from successful demonstrations (one is enough). Returns the net and a log."""
    if not demos:
        raise RewardInputError("need at least one successful demonstration to train a hop model")
    device, rng, gen = seeded_training(train_cfg.device, train_cfg.seed)
    keyframes = keyframes or [[0, d.length - 1] for d in demos]
    phis = [stepwise_progress(d.length, k, train_cfg.levels) for d, k in zip(demos, keyframes)]
    sampler = PairSampler(phis)
    images = [to_tensor(d.select(net_cfg.cameras), net_cfg.image_size, torch.device("cpu")) for d in demos]
    net = HopNet(net_cfg).to(device)

    def batch_loss() -> torch.Tensor:
        rows, labels = sampler.sample(train_cfg.batch_size, rng)
        before = torch.stack([images[d][p] for d, p, _ in rows])
        after = torch.stack([images[d][q] for d, _, q in rows])
        if train_cfg.augment:
            before, after = augment(before, gen), augment(after, gen)
        tasks = [demos[d].task for d, _, _ in rows]
        pred = net(before.to(device), after.to(device), tasks)
        return nn.functional.smooth_l1_loss(pred, torch.from_numpy(labels).to(device), beta=0.1)

    log = {"loss": fit_steps(net, train_cfg.steps, train_cfg.lr, train_cfg.weight_decay, batch_loss,
                             "train hop model", progress)}
    return net.eval(), log


def save_hop_model(out: str | Path, net: HopNet, goal_frames: Mapping[str, np.ndarray],
                   fusion: FusionConfig | None = None, train_log: dict | None = None,
                   overwrite: bool = False, demo_seeds: Iterable[int] = ()) -> Path:
    config = {"net": asdict(net.cfg), "fusion": asdict(fusion or FusionConfig()), "train_log": train_log or {}}
    arrays = {f"goal.{cam}": np.asarray(goal_frames[cam], np.uint8) for cam in net.cfg.cameras}
    return save_model_dir(out, HOP_KIND, config, net, arrays, overwrite=overwrite, demo_seeds=demo_seeds)


def load_hop_model(path: str | Path, device: str = "auto", fusion: FusionConfig | None = None) -> ProcessReward:
    manifest = read_manifest(path, HOP_KIND)
    cfg = manifest["config"]
    net_cfg = frames_config(HopNetConfig, cfg.get("net") or {}, path, "hop model")
    try:
        saved_fusion = FusionConfig(**cfg.get("fusion", {}))
    except (KeyError, TypeError) as exc:
        raise RewardModelError(f"{path}: invalid hop model config ({exc})") from exc
    torch_device = pick_device(device)
    net = HopNet(net_cfg)
    arrays = load_weights(path, net, torch_device)
    try:
        goal = {cam: arrays[f"goal.{cam}"] for cam in net_cfg.cameras}
    except KeyError as exc:
        raise RewardModelError(f"{path}: reference goal frame for camera {exc} missing from arrays.npz") from exc
    return ProcessReward(TrainedHopPredictor(net, torch_device), goal, fusion or saved_fusion)
