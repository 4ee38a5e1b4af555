"""Load any reward model from one argument, and wrap it as the RL learner's reward source.

`--model` accepts a reward-model directory (robo_reward_reward.json says its kind), `hf:ORG/NAME`
(such a directory in the Hugging Face hub cache), an open_clip directory (open_clip_config.json +
weights), `clip:NAME` (open_clip architecture + hub-cache tag) or a LeRobot reward classifier
checkpoint (robo_reward.rewards.lerobot_classifier).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from robo_reward.envs.observations import IMAGE_PREFIX, STATE_KEY
from robo_reward.rewards.base import Episode, RewardModel, RewardModelError
from robo_reward.rewards.shaping import RewardReading
from robo_reward.rewards.vision import DEMO_SEEDS_FIELD, MANIFEST, read_manifest, save_model_dir

NAMED_MODEL_PREFIXES = ("hf:", "clip:")  # a model named in the hub cache, not a directory


def _load_hop(path: Path, device: str) -> RewardModel:
    from robo_reward.rewards.process import load_hop_model

    return load_hop_model(path, device)


def _load_classifier(path: Path, device: str) -> RewardModel:
    from robo_reward.rewards.classifier import load_success_classifier

    return load_success_classifier(path, device)


def _load_rapl(path: Path, device: str) -> RewardModel:
    from robo_reward.rewards.rapl import load_rapl

    return load_rapl(path, device)


def _load_bradley_terry(path: Path, device: str) -> RewardModel:
    from robo_reward.rewards.preference import load_bradley_terry

    return load_bradley_terry(path, device)


def _load_progress_success(path: Path, device: str) -> RewardModel:
    from robo_reward.rewards.combined import load_progress_success

    return load_progress_success(path, device)


def _load_vlm(path: Path, device: str) -> RewardModel:
    """A VLM reward directory only holds settings: which backend (an OpenAI-compatible endpoint or a
    local transformers checkpoint) and the RoboReward scoring options."""
    from robo_reward.rewards.vlm import OpenAIChatConfig, OpenAIChatVLM, TransformersVLM, VLMProgressConfig, VLMProgressReward

    cfg = read_manifest(path)["config"]
    try:
        progress = VLMProgressConfig(**cfg.get("progress", {}))
        if cfg["backend"] == "openai":
            backend = OpenAIChatVLM(OpenAIChatConfig(**cfg.get("endpoint", {})))
        elif cfg["backend"] == "transformers":
            checkpoint = Path(cfg["checkpoint"])
            backend = TransformersVLM(checkpoint if checkpoint.is_absolute() else path / checkpoint, device,
                                      **cfg.get("generation", {}))
        else:
            raise RewardModelError(f"{path / MANIFEST}: backend must be 'openai' or 'transformers', got {cfg['backend']!r}")
    except (KeyError, TypeError) as exc:
        raise RewardModelError(f"{path / MANIFEST}: invalid VLM reward config ({type(exc).__name__}: {exc})") from exc
    return VLMProgressReward(backend, progress)


def _load_clip_manifest(path: Path, device: str) -> RewardModel:
    from robo_reward.rewards.clip import ClipReward, ClipRewardConfig

    cfg = read_manifest(path)["config"]
    known = {f.name for f in fields(ClipRewardConfig)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise RewardModelError(f"{path / MANIFEST}: unknown CLIP settings {unknown}; known: {sorted(known)}")
    return ClipReward(ClipRewardConfig(**{**cfg, "device": device}))


REWARD_MODEL_LOADERS: dict[str, Callable[[Path, str], RewardModel]] = {
    "hop": _load_hop,
    "success-classifier": _load_classifier,
    "clip": _load_clip_manifest,
    "rapl": _load_rapl,
    "bradley-terry": _load_bradley_terry,
    "vlm": _load_vlm,
    "progress-success": _load_progress_success,
}


def register_reward_model(kind: str, loader: Callable[[Path, str], RewardModel]) -> None:
    REWARD_MODEL_LOADERS[kind] = loader


def hub_cache_dir(repo_id: str) -> Path:
    """A reward-model repository already in the Hugging Face hub cache (never downloads)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:
        raise RewardModelError(f"hf:{repo_id} is not in the hub cache ({type(exc).__name__}); "
                               "download it where the hub is reachable or pass a local directory") from exc


def load_reward_model(spec: str | Path, device: str = "auto", **clip_overrides: Any) -> RewardModel:
    from robo_reward.rewards.clip import ClipReward, ClipRewardConfig
    from robo_reward.rewards.lerobot_classifier import is_lerobot_classifier, load_lerobot_classifier

    text = str(spec)
    if text.startswith("hf:"):
        text = str(hub_cache_dir(text.removeprefix("hf:")))
    path = Path(text)
    if text.startswith("clip:") or (path / "open_clip_config.json").is_file():
        model = text.removeprefix("clip:")
        return ClipReward(ClipRewardConfig(model=model, device=device, **clip_overrides))
    if not path.exists():
        raise RewardModelError(f"reward model {text!r} not found: expected a reward-model directory, an open_clip "
                               "directory, or clip:ARCHITECTURE")
    if is_lerobot_classifier(path):
        return load_lerobot_classifier(path, device)
    kind = read_manifest(path)["kind"]
    try:
        loader = REWARD_MODEL_LOADERS[kind]
    except KeyError:
        raise RewardModelError(f"{path}: unknown reward model kind {kind!r}; "
                               f"known: {sorted(REWARD_MODEL_LOADERS)}") from None
    return loader(path, device)


def save_clip_config(out: str | Path, config, overwrite: bool = False, demo_seeds: Iterable[int] = ()) -> Path:
    """A calibrated CLIP reward as a reward-model directory (the open_clip weights stay where they are)."""
    import torch.nn as nn

    from dataclasses import asdict

    settings = {k: v for k, v in asdict(config).items() if k != "device"}
    return save_model_dir(out, "clip", settings, nn.Module(), overwrite=overwrite, demo_seeds=demo_seeds)


def reward_model_demo_seeds(path: str | Path) -> list[int]:
    """The reset seeds of the simulated episodes a reward-model directory learned from; a combined model's
    are its parts' (it names their directories). [] where none were recorded."""
    from robo_reward.rewards.combined import KIND as PROGRESS_SUCCESS_KIND

    manifest = read_manifest(path)
    seeds = set(manifest.get(DEMO_SEEDS_FIELD, []))
    if manifest["kind"] == PROGRESS_SUCCESS_KIND:
        for role in ("progress", "success"):
            seeds.update(reward_model_demo_seeds(Path(path) / manifest["config"][role]))
    return sorted(seeds)


def frames_from_obs(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k.removeprefix(IMAGE_PREFIX): v for k, v in obs.items() if k.startswith(IMAGE_PREFIX)}


class ModelRewardSource:
    """A reward model as the learner's RewardSource: the model streams progress on the env's camera
    images. A model that reports "no reward" stops training with its reason — the learner never sees
    a made-up reward."""

    def __init__(self, model: RewardModel):
        self.model = model
        self.name = getattr(model, "name", "model")
        self.cameras = tuple(model.cameras)
        self.image_size = getattr(model, "render_size", None)  # camera resolution the model was trained at
        self.render_settings = getattr(model, "render_settings", None)  # how its simulated training frames were drawn
        self._stream = None

    @staticmethod
    def _reading(score) -> RewardReading:
        return RewardReading(float(score.progress), bool(score.success), float(score.reward))

    def _check(self, score):
        if not score.ok:
            raise RewardModelError(f"reward model {self.name} gave no reward: {score.error}")
        return score

    def reset(self, obs, task_text) -> RewardReading:
        self._stream = self.model.stream(task_text)
        return self._reading(self._check(self._stream.reset(frames_from_obs(obs), obs.get(STATE_KEY))))

    def read(self, obs, info) -> RewardReading:
        return self._reading(self._check(self._stream.step(frames_from_obs(obs), obs.get(STATE_KEY))))

    def episode_readings(self, episode: Episode) -> list[RewardReading]:
        """Readings of a recorded episode's T frames plus the state after its last action (LeRobot
        does not store it: the last frame repeats), batched through score_episode (demonstrations)."""
        result = self.model.score_episode(episode)
        if not result.ok:
            raise RewardModelError(f"reward model {self.name} gave no reward for a demonstration: {result.error}")
        readings = [RewardReading(float(p), bool(s), float(r))
                    for p, s, r in zip(result.progress, result.success, result.reward)]
        return readings + readings[-1:]
