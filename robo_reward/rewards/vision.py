"""Small trainable vision parts shared by the image reward models (hop, success classifier, Bradley-Terry, RAPL).

- `MultiViewEncoder`: one conv tower shared by all cameras (front + wrist), features concatenated.
- `TaskEmbedding`: hashed bag of words, so any instruction maps to a learned vector without a
  tokenizer download; the same text always lands in the same buckets.
- `augment`: DrQ-style random shift plus brightness/contrast jitter — what lets a model trained on
  one demonstration tolerate new object positions and lighting.
- `fit_steps`: the AdamW loop every frame/pair model here trains with (only the batch loss differs).
- Model directories: `robo_reward_reward.json` (kind + config) beside `model.safetensors`; loading
  never unpickles anything.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from robo_reward.envs.rendering import RENDER_PRESETS, RenderSettings
from robo_reward.fileutil import staged_dir
from robo_reward.rewards.base import RewardModelError

MANIFEST = "robo_reward_reward.json"
# in MANIFEST: the reset seeds of the simulated episodes a model learned from (a policy trained on its reward
# has seen those initial states too: `eval` warns when it is scored on them)
DEMO_SEEDS_FIELD = "demo_seeds"
WEIGHTS = "model.safetensors"


class MultiViewEncoder(nn.Module):
    """(B, V, 3, H, W) float in [0, 1] -> (B, out_dim)."""

    def __init__(self, views: int, out_dim: int = 128, width: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.project = nn.Sequential(nn.Linear(views * 4 * width, out_dim), nn.LayerNorm(out_dim))
        self.views = views

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, v = images.shape[:2]
        if v != self.views:
            raise RewardModelError(f"encoder expects {self.views} camera views, got {v}")
        features = self.conv(images.flatten(0, 1) * 2.0 - 1.0)
        return self.project(features.view(b, -1))


class TaskEmbedding(nn.Module):
    def __init__(self, dim: int = 32, buckets: int = 1024):
        super().__init__()
        self.buckets = buckets
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean")

    def token_ids(self, text: str) -> list[int]:
        words = text.lower().replace(",", " ").replace(".", " ").split() or [""]
        return [zlib.crc32(w.encode()) % self.buckets for w in words]

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        ids = [self.token_ids(t) for t in texts]
        flat = torch.tensor([i for row in ids for i in row], device=self.bag.weight.device)
        offsets = torch.tensor(np.cumsum([0] + [len(r) for r in ids[:-1]]), device=self.bag.weight.device)
        return self.bag(flat, offsets)


def to_tensor(views: Sequence[np.ndarray], image_size: int | tuple[int, int], device: torch.device) -> torch.Tensor:
    """Per-camera uint8 (N, H, W, 3) -> float (N, V, 3, S, S) in [0, 1], resized to the model's size
    (S, or (height, width))."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    out = []
    for frames in views:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        out.append(x)
    return torch.stack(out, dim=1)


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4, jitter: float = 0.2) -> torch.Tensor:
    """Random shift by up to `pad` pixels (border padding, one grid_sample for the whole batch) and
    brightness/contrast jitter, independently per image."""
    b, v, c, h, w = images.shape
    x = images.flatten(0, 1)
    n = x.shape[0]
    shift = (torch.randint(-pad, pad + 1, (n, 2), generator=generator).float() * 2
             / torch.tensor([w, h], dtype=torch.float32)).to(x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
    gain = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1).to(x.device)
    bias = jitter / 2 * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1).to(x.device)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * gain + mean + bias).clamp(0, 1).view(b, v, c, h, w)


def fit_steps(net: nn.Module, steps: int, lr: float, weight_decay: float, batch_loss: Callable[[], torch.Tensor],
              desc: str, progress: bool, log_every: int = 50) -> list[list[float]]:
    """AdamW on `batch_loss()` (a fresh batch each call) for `steps` steps, with a progress bar; returns the
    [step, loss] curve sampled every `log_every` steps and at the last."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    curve = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            curve.append([step, loss.item()])
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return curve


def save_model_dir(out: str | Path, kind: str, config: Mapping[str, Any], module: nn.Module,
                   extra_arrays: Mapping[str, np.ndarray] | None = None, overwrite: bool = False,
                   demo_seeds: Iterable[int] = ()) -> Path:
    """Write manifest + safetensors (+ npz of reference frames) into a staged directory, then publish it."""
    from safetensors.torch import save_file

    with staged_dir(out, overwrite=overwrite) as staging:
        save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(staging / WEIGHTS))
        if extra_arrays:
            np.savez(staging / "arrays.npz", **extra_arrays)
        seeds = sorted({int(s) for s in demo_seeds})
        manifest = {"kind": kind, "config": dict(config), **({DEMO_SEEDS_FIELD: seeds} if seeds else {})}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return Path(out)


def read_manifest(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """The directory's manifest; with `kind`, a directory holding another kind of model is an error."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        raise RewardModelError(f"{path}: not a reward model directory ({MANIFEST} missing)")
    try:
        data = json.loads(manifest.read_text())
        data["kind"], data["config"]  # noqa: B018 - presence check
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RewardModelError(f"{manifest}: invalid manifest ({exc}); expected {{'kind': ..., 'config': {{...}}}}") \
            from exc
    if kind is not None and data["kind"] != kind:
        raise RewardModelError(f"{path}: reward model kind is {data['kind']!r}, expected {kind!r}")
    return data


def save_net_model(out: str | Path, kind: str, net: nn.Module, train_log: dict | None = None,
                   overwrite: bool = False, demo_seeds: Iterable[int] = ()) -> Path:
    """A model directory whose manifest holds the net's config dataclass (`net.cfg`) and the train log."""
    from dataclasses import asdict

    return save_model_dir(out, kind, {"net": asdict(net.cfg), "train_log": train_log or {}}, net,
                          overwrite=overwrite, demo_seeds=demo_seeds)


def frames_config(config_cls: type, raw: Mapping[str, Any], path: str | Path, what: str):
    """A vision model's saved config as `config_cls`: cameras back to a tuple, render settings checked.
    A config without `render` was saved before render settings were recorded, when every simulated
    frame was drawn as robosuite draws; `render: null` means frames from a camera or a video."""
    try:
        render = raw["render"] if "render" in raw else RENDER_PRESETS["robosuite"].to_dict()
        if render is not None:
            render = RenderSettings.from_dict(render, f"{Path(path) / MANIFEST}: {what} config field 'render'").to_dict()
        return config_cls(**{**raw, "cameras": tuple(raw["cameras"]), "render": render})
    except (KeyError, TypeError, ValueError) as exc:
        raise RewardModelError(f"{path}: invalid {what} config ({exc})") from exc


def read_net_config(path: str | Path, kind: str, config_cls: type, what: str):
    """The `net` config saved by save_net_model, as `config_cls`."""
    manifest = read_manifest(path, kind)
    if not isinstance(manifest["config"].get("net"), Mapping):
        raise RewardModelError(f"{path}: invalid {what} config (no 'net' mapping)")
    return frames_config(config_cls, manifest["config"]["net"], path, what)


def load_weights(path: str | Path, module: nn.Module, device: torch.device) -> dict[str, np.ndarray]:
    """safetensors weights into `module`, plus the reference arrays; shape mismatches name the file."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = load_file(str(path / WEIGHTS), device=str(device))
        module.load_state_dict(state)
    except Exception as exc:
        raise RewardModelError(f"{path / WEIGHTS}: cannot load weights ({type(exc).__name__}: {exc})") from exc
    arrays_file = path / "arrays.npz"
    if not arrays_file.is_file():
        return {}
    with np.load(arrays_file, allow_pickle=False) as arrays:
        return {k: arrays[k] for k in arrays.files}
