"""Plain-data codecs the ROS 2 nodes use around standard messages (no rclpy here).

- Images: sensor_msgs/Image fields <-> RGB uint8 arrays (rgb8, bgr8, rgba8, bgra8, mono8).
- Transitions (actor -> learner): one flat float32 vector in a std_msgs/Float32MultiArray.
- Actor weights (learner -> actor): safetensors bytes in a std_msgs/UInt8MultiArray — no pickle
  crosses the wire, so a bad or hostile blob can only fail to load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from robo_reward.errors import RoboRewardError
from robo_reward.rl.transition import Transition

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class MessageError(RoboRewardError):
    """A message cannot be decoded (unknown encoding, wrong size, bad layout)."""


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: bytes | memoryview) -> np.ndarray:
    """(H, W, 3) uint8 RGB from sensor_msgs/Image fields; anything malformed raises MessageError."""
    if encoding not in CHANNELS:
        raise MessageError(f"image encoding {encoding!r} not supported; expected one of {sorted(CHANNELS)}")
    c = CHANNELS[encoding]
    if height <= 0 or width <= 0:
        raise MessageError(f"image size {width}x{height} is empty")
    if step < width * c:
        raise MessageError(f"image step {step} is shorter than width*channels = {width * c}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise MessageError(f"image data has {buf.size} bytes, expected step*height = {step * height}")
    pixels = buf.reshape(height, step)[:, : width * c].reshape(height, width, c)
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


_SCALARS = ("stamp", "episode", "step", "terminated", "truncated", "intervention", "reward", "obs_stamp", "progress",
            "next_progress", "success")


def encode_transition(t: Transition) -> np.ndarray:
    obs_dim, act_dim = t.obs.size, t.action.size
    head = np.array([obs_dim, act_dim, *(float(getattr(t, k)) for k in _SCALARS)], np.float64)
    body = np.concatenate([t.obs, t.base_action, t.action, t.next_obs, t.next_base_action]).astype(np.float64)
    return np.concatenate([head, body])


def decode_transition(data: np.ndarray, obs_dim: int, act_dim: int) -> Transition:
    """Checks the dimensions against the learner's: a transition from another robot is rejected."""
    data = np.asarray(data, np.float64)
    n_head = 2 + len(_SCALARS)
    if data.size < n_head:
        raise MessageError(f"transition has {data.size} values, fewer than its {n_head}-value header")
    if (int(data[0]), int(data[1])) != (obs_dim, act_dim):
        raise MessageError(f"transition dims (obs {int(data[0])}, action {int(data[1])}) do not match the "
                           f"learner's (obs {obs_dim}, action {act_dim})")
    expected = n_head + 2 * obs_dim + 3 * act_dim
    if data.size != expected:
        raise MessageError(f"transition has {data.size} values, expected {expected}")
    body = data[n_head:]
    if not np.all(np.isfinite(body)):
        raise MessageError("transition contains NaN or inf")
    cuts = np.cumsum([obs_dim, act_dim, act_dim, obs_dim])
    obs, base, action, next_obs, next_base = np.split(body.astype(np.float32), cuts)
    scalars = dict(zip(_SCALARS, data[2:n_head]))
    if not all(np.isfinite(scalars[k]) for k in ("stamp", "obs_stamp", "episode", "step")):
        raise MessageError("transition stamps or episode/step index are NaN or inf")
    return Transition(obs, base, action, next_obs, next_base, stamp=float(scalars["stamp"]),
                      episode=int(scalars["episode"]), step=int(scalars["step"]), terminated=bool(scalars["terminated"]),
                      truncated=bool(scalars["truncated"]), intervention=bool(scalars["intervention"]),
                      reward=float(scalars["reward"]), obs_stamp=float(scalars["obs_stamp"]),
                      progress=float(scalars["progress"]), next_progress=float(scalars["next_progress"]),
                      success=bool(scalars["success"]))


def encode_weights(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, object]) -> bytes:
    return save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                            metadata={"robo_reward": json.dumps(dict(metadata))})


def encode_actor_weights(learner, session: str, version: int, **metadata: object) -> bytes:
    """What a remote actor needs of a ResidualTD3 (normalizer + residual actor), versioned within one
    learner `session`; RuntimeActor.load_weights reads it."""
    return encode_weights(learner.actor_tensors(), {
        "session": session, "version": version, "obs_dim": learner.obs_dim, "act_dim": learner.act_dim,
        "learner": learner.cfg.to_dict(), **metadata})


def decode_weights(blob: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        blob = bytes(blob)
        tensors = load_safetensors(blob)
        # the metadata travels in the safetensors header (8-byte length, then JSON)
        header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])
        meta = json.loads(header.get("__metadata__", {}).get("robo_reward", "{}"))
    except Exception as exc:  # safetensors raises its own types for truncated or corrupt headers
        raise MessageError(f"actor weights cannot be decoded ({type(exc).__name__}: {exc})") from exc
    return tensors, meta
