"""RAPL (Tian et al.): a preference-aligned visual encoder + optimal-transport reward against expert videos.

Cost C_tj = 1 - cos(phi(o_t), phi(o^E_j)); P* = entropic OT coupling (POT's log-domain Sinkhorn on
torch tensors, so gradients flow into phi); per-step reward r_t = -sum_j P*_tj C_tj; episode score
= sum_t r_t, best over the expert demonstrations. Preferences fine-tune phi itself with a
Bradley-Terry loss over OT scores: P(A > B) = sigmoid(score_A - score_B).

Progress in [0, 1] for the common interface: the expected position, along the expert video, of the
expert frames each robot frame is softly matched to (softmax over -C / temperature) — OT aligns
time, so "where in the expert demo does this frame look like" is a natural progress estimate.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from robo_reward.device import pick_device, seeded_training
from robo_reward.rewards.base import (
    Episode,
    RewardInputError,
    RewardModelError,
    RewardResult,
    StepScore,
    check_task,
    single_frame,
)
from robo_reward.rewards.vision import (
    MultiViewEncoder,
    augment,
    frames_config,
    load_weights,
    read_manifest,
    save_model_dir,
    to_tensor,
)

RAPL_KIND = "rapl"


@dataclass
class RaplConfig:
    cameras: tuple[str, ...] = ("agentview",)
    image_size: int = 64
    render: dict | None = None  # how simulated training frames were drawn (RenderSettings); None: camera/video
    feature_dim: int = 64
    sinkhorn_reg: float = 0.05  # entropic regularization of the OT coupling
    sinkhorn_iters: int = 200
    progress_temperature: float = 0.05  # soft matching for the progress read-out
    success_progress: float = 0.95


def ot_coupling(cost: torch.Tensor, reg: float, iters: int) -> torch.Tensor:
    """Entropic OT with uniform marginals (POT, log-domain Sinkhorn; differentiable through torch)."""
    import ot

    n, m = cost.shape
    a = torch.full((n,), 1.0 / n, dtype=cost.dtype, device=cost.device)
    b = torch.full((m,), 1.0 / m, dtype=cost.dtype, device=cost.device)
    with warnings.catch_warnings():  # a not-yet-converged coupling after `iters` is still a valid plan
        warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
        return ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", numItermax=iters)


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T


class RaplReward:
    name = RAPL_KIND

    def __init__(self, encoder: MultiViewEncoder, experts: Sequence[Sequence[np.ndarray]], cfg: RaplConfig,
                 device: torch.device):
        if not experts:
            raise RewardModelError("RAPL needs at least one expert demonstration")
        self.encoder, self.cfg, self.device = encoder.to(device).eval(), cfg, device
        self.cameras = tuple(cfg.cameras)
        self.experts = [[np.asarray(v) for v in views] for views in experts]
        self._expert_embeddings = None
        self.render_size = (cfg.image_size,) * 2
        self.render_settings = cfg.render

    def embed(self, views: Sequence[np.ndarray]) -> torch.Tensor:
        return self.encoder(to_tensor(views, self.cfg.image_size, self.device))

    def expert_embeddings(self) -> list[torch.Tensor]:
        if self._expert_embeddings is None:
            with torch.inference_mode():
                self._expert_embeddings = [self.embed(views) for views in self.experts]
        return self._expert_embeddings

    def ot_rewards(self, robot: torch.Tensor, expert: torch.Tensor) -> torch.Tensor:
        cost = cosine_cost(robot, expert)
        coupling = ot_coupling(cost, self.cfg.sinkhorn_reg, self.cfg.sinkhorn_iters)
        return -(coupling * cost).sum(-1)

    def progress_from(self, robot: torch.Tensor, expert: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(-cosine_cost(robot, expert) / self.cfg.progress_temperature, dim=-1)
        positions = torch.linspace(0.0, 1.0, expert.shape[0], device=expert.device)
        return weights @ positions

    def best_expert(self, robot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(expert embeddings, per-step OT rewards) of the expert video the robot video matches best."""
        experts = self.expert_embeddings()
        per_expert = [self.ot_rewards(robot, e) for e in experts]
        best = int(torch.stack([r.sum() for r in per_expert]).argmax())
        return experts[best], per_expert[best]

    @torch.inference_mode()
    def score_episode(self, episode: Episode) -> RewardResult:
        robot = self.embed(episode.select(self.cameras))
        expert, ot_rewards = self.best_expert(robot)
        rewards = ot_rewards.cpu().numpy()
        progress = self.progress_from(robot, expert).cpu().numpy()
        return RewardResult(progress=progress.astype(np.float32), success=progress >= self.cfg.success_progress,
                            reward=rewards.astype(np.float32), score=float(rewards.sum()))

    def stream(self, task: str) -> "_RaplStream":
        return _RaplStream(self, check_task(task))


class _RaplStream:
    """Per step: soft-matched progress against the expert that fits the episode so far best (by OT)."""

    def __init__(self, model: RaplReward, task: str):
        self.model, self.task = model, task
        self.embeddings: list[torch.Tensor] = []

    @torch.inference_mode()
    def step(self, frames, state=None) -> StepScore:
        views = single_frame(frames, self.model.cameras)
        self.embeddings.append(self.model.embed([views[c] for c in self.model.cameras])[0])
        robot = torch.stack(self.embeddings)
        expert, ot_rewards = self.model.best_expert(robot)
        progress = float(self.model.progress_from(robot[-1:], expert)[0])
        reward = float(ot_rewards[-1])
        return StepScore(progress, progress >= self.model.cfg.success_progress, reward)

    def reset(self, frames, state=None) -> StepScore:
        self.embeddings = []
        return self.step(frames, state)


@dataclass
class RaplTrainConfig:
    epochs: int = 30
    lr: float = 1e-4
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    device: str = "auto"


def train_rapl(experts: Sequence[Episode], preferences: Sequence[tuple[Episode, ...]],
               cfg: RaplConfig = RaplConfig(), train_cfg: RaplTrainConfig = RaplTrainConfig(),
               encoder: MultiViewEncoder | None = None, progress: bool = True) -> tuple[RaplReward, dict]:
    """Fine-tune the encoder so OT scores rank each preference right: (preferred, other) against the
    expert videos (best match), or a triplet (closer, farther, reference) against its own reference."""
    if not preferences:
        raise RewardInputError("RAPL training needs at least one (preferred, other) episode pair")
    device, order, gen = seeded_training(train_cfg.device, train_cfg.seed)
    encoder = (encoder or MultiViewEncoder(len(cfg.cameras), cfg.feature_dim)).to(device)
    cpu = torch.device("cpu")
    expert_images = [to_tensor(e.select(cfg.cameras), cfg.image_size, cpu) for e in experts]
    pair_images = [[to_tensor(e.select(cfg.cameras), cfg.image_size, cpu) for e in item] for item in preferences]
    opt = torch.optim.AdamW(encoder.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    model = RaplReward(encoder, [e.select(cfg.cameras) for e in experts], cfg, device)
    log = {"loss": [], "accuracy": []}
    bar = tqdm(range(train_cfg.epochs), desc="train RAPL encoder", disable=not progress)
    for epoch in bar:
        encoder.train()
        losses, correct = [], 0
        for i in order.permutation(len(pair_images)):
            preferred, other, *reference = pair_images[i]
            views = [preferred, other] + (reference or expert_images)
            if train_cfg.augment:
                views = [augment(v, gen) for v in views]
            emb = [encoder(v.to(device)) for v in views]
            scores = torch.stack([
                torch.stack([model.ot_rewards(emb[k], e).sum() for e in emb[2:]]).max() for k in (0, 1)
            ])
            loss = -F.logsigmoid(scores[0] - scores[1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            correct += int(scores[0] > scores[1])
        log["loss"].append(float(np.mean(losses)))
        log["accuracy"].append(correct / len(pair_images))
        bar.set_postfix(loss=f"{log['loss'][-1]:.4f}", pref_acc=f"{log['accuracy'][-1]:.2f}")
    encoder.eval()
    model._expert_embeddings = None
    return model, log


def save_rapl(out: str | Path, model: RaplReward, train_log: dict | None = None, overwrite: bool = False,
              demo_seeds: Iterable[int] = ()) -> Path:
    arrays = {f"expert{i}.{cam}": views[k].astype(np.uint8)
              for i, views in enumerate(model.experts) for k, cam in enumerate(model.cameras)}
    config = {"rapl": {**asdict(model.cfg)}, "experts": len(model.experts), "train_log": train_log or {}}
    return save_model_dir(out, RAPL_KIND, config, model.encoder, arrays, overwrite=overwrite, demo_seeds=demo_seeds)


def load_rapl(path: str | Path, device: str = "auto") -> RaplReward:
    manifest = read_manifest(path, RAPL_KIND)
    cfg = frames_config(RaplConfig, manifest["config"].get("rapl") or {}, path, "RAPL")
    try:
        count = int(manifest["config"]["experts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RewardModelError(f"{path}: invalid RAPL config ({exc})") from exc
    torch_device = pick_device(device)
    encoder = MultiViewEncoder(len(cfg.cameras), cfg.feature_dim)
    arrays = load_weights(path, encoder, torch_device)
    try:
        experts = [[arrays[f"expert{i}.{cam}"] for cam in cfg.cameras] for i in range(count)]
    except KeyError as exc:
        raise RewardModelError(f"{path}: expert video {exc} missing from arrays.npz") from exc
    return RaplReward(encoder, experts, cfg, torch_device)
