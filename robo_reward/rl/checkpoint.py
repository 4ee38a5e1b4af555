"""Checkpoints that resume exactly: learner (actor, critics, targets, optimizers, normalizer, RNG),
replay buffers, loop counters and the exploration RNG.

Layout of a checkpoint directory:
  learner.pt     tensors and plain values only -> loadable with torch.load(weights_only=True)
  replay.npz     replay buffers as plain arrays -> loadable with np.load(allow_pickle=False)
  progress.json  env step, episode index, numpy RNG state, metrics history
A checkpoint is written to a temporary sibling and renamed into place, so a crash mid-write
never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo_reward.errors import PolicyError
from robo_reward.rl.buffers import NStepReplayBuffer
from robo_reward.rl.learners import learner_from_state_dict

LEARNER_FILE = "learner.pt"
REPLAY_FILE = "replay.npz"
PROGRESS_FILE = "progress.json"


def save_checkpoint(
    directory: Path,
    learner,
    buffers: Mapping[str, NStepReplayBuffer],
    progress: Mapping[str, Any],
) -> None:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    old = directory.with_name(f".{directory.name}.old")
    for stale in directory.parent.glob(f".{directory.name}.tmp-*"):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)
    if old.exists() and directory.exists():
        shutil.rmtree(old)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        torch.save({"learner": learner.state_dict()}, tmp / LEARNER_FILE)
        arrays = {f"{name}/{k}": np.asarray(v) for name, buf in buffers.items() for k, v in buf.state_dict().items()}
        np.savez(tmp / REPLAY_FILE, **arrays)
        (tmp / PROGRESS_FILE).write_text(json.dumps(progress))
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def readable_checkpoint(directory: Path) -> Path:
    """`directory`, or the previous checkpoint kept while a save was being swapped in by a crashed run."""
    directory = Path(directory)
    old = directory.with_name(f".{directory.name}.old")
    return directory if directory.is_dir() or not old.is_dir() else old


def load_learner(directory: Path, device: torch.device):
    path = readable_checkpoint(directory) / LEARNER_FILE
    if not path.is_file():
        raise PolicyError(f"checkpoint {directory} has no {LEARNER_FILE}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        learner = learner_from_state_dict(state["learner"], device)
    except Exception as exc:  # torch/pickle/zip raise many types for corrupt or foreign files
        raise PolicyError(f"{path}: not a valid learner checkpoint ({exc})") from exc
    return learner


def load_buffers(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per-buffer state dicts, keyed by the names they were saved under."""
    path = readable_checkpoint(directory) / REPLAY_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            out: dict[str, dict[str, np.ndarray]] = {}
            for key in data.files:
                name, field = key.split("/", 1)
                out.setdefault(name, {})[field] = data[key]
    except Exception as exc:  # zipfile/EOF/ValueError for truncated or foreign files
        raise PolicyError(f"{path}: cannot read replay buffers ({exc})") from exc
    return out


def load_progress(directory: Path) -> dict[str, Any]:
    path = readable_checkpoint(directory) / PROGRESS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read training progress ({exc})") from exc
