"""LeRobot policies (ACT with action chunking, as ResFiT uses) as base policies.

Training goes through lerobot's own `lerobot-train` entry point on a LeRobotDataset; acting goes
through lerobot's own pre/post-processor pipelines and `select_action` (which keeps the action
chunk queue). A LeRobot checkpoint directory (`.../pretrained_model`) loads as-is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo_reward.data.lerobot_io import dataset_features, read_episode_seeds
from robo_reward.device import pick_device
from robo_reward.envs.observations import IMAGE_PREFIX
from robo_reward.errors import PolicyError
from robo_reward.rl.policies import checked_action, register_policy_kind, write_policy_manifest

LEROBOT_KIND = "lerobot"
PRETRAINED_SUBDIR = "pretrained_model"


@dataclass
class ACTTrainConfig:
    """CPU-sized ACT: small transformer, short chunks. Paper-size ACT is dim_model 512, chunk 100."""

    steps: int = 3000
    batch_size: int = 64
    chunk_size: int = 10
    n_action_steps: int = 10
    dim_model: int = 128
    n_heads: int = 4
    dim_feedforward: int = 512
    n_encoder_layers: int = 2
    n_vae_encoder_layers: int = 2
    latent_dim: int = 16
    lr: float = 1e-4
    seed: int = 0
    # ACT's camera encoder starts from ImageNet weights (the paper's); None: from scratch
    backbone_weights: str | None = "ResNet18_Weights.IMAGENET1K_V1"

    def cli_args(self) -> list[str]:
        return [
            f"--steps={self.steps}", f"--batch_size={self.batch_size}", f"--seed={self.seed}",
            f"--policy.chunk_size={self.chunk_size}", f"--policy.n_action_steps={self.n_action_steps}",
            f"--policy.dim_model={self.dim_model}", f"--policy.n_heads={self.n_heads}",
            f"--policy.dim_feedforward={self.dim_feedforward}", f"--policy.n_encoder_layers={self.n_encoder_layers}",
            f"--policy.n_vae_encoder_layers={self.n_vae_encoder_layers}", f"--policy.latent_dim={self.latent_dim}",
            f"--policy.optimizer_lr={self.lr}", f"--policy.pretrained_backbone_weights={self.backbone_weights or 'null'}",
        ]


def cached_backbone_weights(name: str) -> Path | None:
    """Where torchvision keeps the named weights once downloaded (torch's hub cache), if they are there:
    lerobot-train would otherwise fetch them, and a robot or this machine may have no internet."""
    import torchvision

    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(torchvision.models.get_weight(name).url).name
    return path if path.is_file() else None


def train_act(dataset_root: Path, out_dir: Path, env_spec: Mapping[str, Any], config: ACTTrainConfig,
              device: str = "auto") -> Path:
    """Run `lerobot-train --policy.type=act` and turn its last checkpoint into a policy directory."""
    if config.backbone_weights and cached_backbone_weights(config.backbone_weights) is None \
            and any(key.startswith(IMAGE_PREFIX) for key in dataset_features(dataset_root)):
        print(f"note: {config.backbone_weights} are not in torch's cache ({torch.hub.get_dir()}/checkpoints): "
              "ACT's camera encoder trains from scratch", file=sys.stderr)
        config = replace(config, backbone_weights=None)
    work = out_dir.parent / f".{out_dir.name}.lerobot_train"
    shutil.rmtree(work, ignore_errors=True)
    cmd = [
        str(Path(sys.executable).with_name("lerobot-train")),
        f"--dataset.repo_id=local/{dataset_root.name}", f"--dataset.root={dataset_root}",
        "--policy.type=act", f"--policy.device={pick_device(device).type}", "--policy.push_to_hub=false",
        "--wandb.enable=false", "--num_workers=0", f"--output_dir={work}", "--log_freq=200",
        f"--save_freq={config.steps}", *config.cli_args(),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    try:
        proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=subprocess.STDOUT)
        pretrained = work / "checkpoints" / "last" / PRETRAINED_SUBDIR
        if proc.returncode != 0 or not pretrained.is_dir():
            raise PolicyError(f"lerobot-train failed (exit {proc.returncode}); its log is above. Command: {' '.join(cmd)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(pretrained, out_dir / PRETRAINED_SUBDIR)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_policy_manifest(out_dir, LEROBOT_KIND, env_spec, read_episode_seeds(dataset_root), lerobot_policy="act",
                          train_config=vars(config))
    return out_dir


class LeRobotPolicy:
    """Any LeRobot pretrained policy directory acting on our observation dicts."""

    def __init__(self, pretrained_dir: Path, device: str = "auto"):
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        if (pretrained_dir / "config.json").is_file() and not (pretrained_dir / "policy_preprocessor.json").is_file():
            raise PolicyError(
                f"{pretrained_dir}: no policy_preprocessor.json — saved by lerobot before 0.4, with the normalization "
                "inside the model; migrate it: python -m lerobot.processor.migrate_policy_normalization "
                f"--pretrained-path {pretrained_dir} --output-dir DIR")
        try:
            config = PreTrainedConfig.from_pretrained(pretrained_dir)
            config.device = pick_device(device).type
            self.policy = get_policy_class(config.type).from_pretrained(pretrained_dir, config=config).eval()
            self.preprocess, self.postprocess = make_pre_post_processors(
                config, pretrained_path=str(pretrained_dir),
                preprocessor_overrides={"device_processor": {"device": config.device}},
            )
            self.input_shapes = {k: tuple(f.shape) for k, f in config.input_features.items()}
            self.input_keys = list(self.input_shapes)
            self.act_dim = config.output_features["action"].shape[0]
            self.kind = config.type
        except Exception as exc:  # draccus, safetensors, torch and json all raise their own types
            raise PolicyError(f"{pretrained_dir}: cannot load LeRobot policy ({type(exc).__name__}: {exc})") from exc

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset()

    def check_fits(self, features: Mapping[str, tuple[int, ...]], where: str) -> None:
        """Refuse a base whose inputs or action do not match the env's (`features`: observation keys
        and "action" with their shapes, images (H, W, 3), None for a size known only at run time);
        every mismatch is named."""
        problems = []
        for key, shape in self.input_shapes.items():
            ours = features.get(key, ())
            if ours == ():
                problems.append(f"it reads {key} {shape}, which {where} does not have")
            elif ours is None:  # delivered, size known only at run time
                continue
            elif (tuple(ours[2:]) + tuple(ours[:2]) if key.startswith(IMAGE_PREFIX) else tuple(ours)) != shape:
                problems.append(f"it reads {key} as {shape}, {where} has {tuple(ours)}")
        if "action" in features and tuple(features["action"]) != (self.act_dim,):
            problems.append(f"its action has {self.act_dim} elements, {where}'s {features['action'][0]}")
        if problems:
            raise PolicyError(f"the LeRobot {self.kind} base does not fit: " + "; ".join(problems))

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [k for k in self.input_keys if k not in obs]
        if missing:
            raise PolicyError(f"LeRobot policy needs observation keys {missing}; got {sorted(obs)}")
        batch = {k: _to_lerobot_tensor(k, obs[k]) for k in self.input_keys}
        action = self.postprocess(self.policy.select_action(self.preprocess(batch)))
        return checked_action(action[0].cpu().numpy(), self.act_dim, "LeRobot policy")


def _to_lerobot_tensor(key: str, value: np.ndarray) -> torch.Tensor:
    """Batch of one; images go from our HWC uint8 to LeRobot's CHW float in [0, 1]."""
    if key.startswith(IMAGE_PREFIX):
        return torch.as_tensor(np.asarray(value)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    return torch.as_tensor(np.asarray(value, dtype=np.float32)).unsqueeze(0)


@register_policy_kind(LEROBOT_KIND)
def load_lerobot_policy(directory: Path, manifest: Mapping[str, Any], device: str) -> LeRobotPolicy:
    return LeRobotPolicy(directory / PRETRAINED_SUBDIR, device)
