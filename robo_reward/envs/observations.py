"""Helpers for the observation dict described in docs/conventions.md."""

from __future__ import annotations

from collections.abc import Mapping

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

