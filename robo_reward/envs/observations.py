"""Helpers for the observation dict described in docs/conventions.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
IMAGE_PREFIX = "observation.images."
STATE_KEYS = (STATE_KEY, ENV_STATE_KEY)


def flat_state(obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Concatenate proprioception and object state into the vector state-based learners use."""
    parts = [np.asarray(obs[k], dtype=np.float32).ravel() for k in STATE_KEYS if k in obs]
    if not parts:
        raise KeyError(f"observation has none of {STATE_KEYS}; keys: {sorted(obs)}")
    return np.concatenate(parts)



# Version of the layout below, recorded in every dataset's robo_reward_env.json. 1: end-effector and
# object orientations as quaternions (x, y, z, w); robosuite keeps w >= 0, so a gripper pointing
# straight down (w ~ 0) flipped sign several times per episode. 2: 6-D rotations.
OBSERVATION_FORMAT = 2
ROTATION_DIM = 6  # what rotation_6d makes of a quaternion
EE_POSE_DIM = 3 + ROTATION_DIM  # position + rotation


def rotation_6d(quat_xyzw: np.ndarray) -> np.ndarray:
    """The first two columns of the rotation matrix, (..., 4) -> (..., 6) as [col0, col1]: continuous
    over all rotations and stateless (Zhou et al., CVPR 2019), unlike a quaternion, whose sign flips
    where a convention canonicalises it and whose continuity would need memory of the last frame."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(np.isfinite(q)) or np.any(norm < 1e-6):
        raise ValueError(f"not a rotation quaternion (x, y, z, w): {q.tolist()}")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    col0 = [1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w)]
    col1 = [2 * (x * y - z * w), 1 - 2 * (x * x + z * z), 2 * (y * z + x * w)]
    return np.stack(col0 + col1, axis=-1)


def rotation_from_6d(r6: np.ndarray) -> np.ndarray:
    """The rotation matrix (..., 3, 3) whose first two columns are closest to `r6` (Gram-Schmidt)."""
    r6 = np.asarray(r6, dtype=np.float64)
    a, b = r6[..., :3], r6[..., 3:6]
    c0 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - np.sum(c0 * b, axis=-1, keepdims=True) * c0
    c1 = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([c0, c1, np.cross(c0, c1)], axis=-1)


def proprio_vector(ee_poses: Sequence[tuple[Sequence[float], Sequence[float]]], grippers: Sequence[float],
                   joints: Sequence[float]) -> np.ndarray:
    """observation.state, the one processing step of sim and robot alike: per end effector position and
    6-D rotation (from a quaternion x, y, z, w), then gripper joint positions, then arm joint positions."""
    parts = [np.r_[np.asarray(p, np.float64), rotation_6d(q)] for p, q in ee_poses]
    if not all(np.all(np.isfinite(part)) for part in parts):
        raise ValueError(f"non-finite end-effector position {[part[:3].tolist() for part in parts]}")
    return np.concatenate([*parts, np.asarray(grippers, np.float64), np.asarray(joints, np.float64)]).astype(np.float32)


def object_vector(named_parts: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    """observation.environment_state from named object readings: every `*_quat` part as a 6-D rotation."""
    return np.concatenate([rotation_6d(v) if name.endswith("quat") else np.asarray(v, np.float64).ravel()
                           for name, v in named_parts]).astype(np.float32)


OBSERVATION_FORMATS = {1: "end-effector and object orientations as quaternions",
                       2: "orientations as 6-D rotations"}


def observation_format_mismatch(env_spec: Mapping[str, object]) -> str | None:
    """What is wrong with the observation format an env spec (a dataset's or a policy's) records, or
    None if it is this version's. Specs from before formats were recorded are format 1."""
    version = env_spec.get("observation_format", 1)
    if version == OBSERVATION_FORMAT:
        return None
    return (f"observation format {version} ({OBSERVATION_FORMATS.get(version, 'unknown')}), but this robo_reward "
            f"uses format {OBSERVATION_FORMAT} ({OBSERVATION_FORMATS[OBSERVATION_FORMAT]}; docs/conventions.md)")
