"""Policies the learner and the evaluator see only through `reset()` and `act(obs) -> action`.

A base policy can be a scripted controller, the small MLP behaviour-cloning policy, or a LeRobot
checkpoint directory (ACT with action chunking, as ResFiT uses). Policy directories carry a
`robo_reward_policy.json` naming their kind, so `load_policy(path)` needs no if-chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robo_reward.envs.observations import OBSERVATION_FORMAT, observation_format_mismatch
from robo_reward.envs.scenes import spec_with_scene
from robo_reward.errors import PolicyError

POLICY_FILE = "robo_reward_policy.json"
DEMO_SEEDS_FIELD = "demo_seeds"


class Policy(Protocol):
    def reset(self, seed: int | None = None) -> None:
        """Start an episode; stochastic policies reseed from `seed` so episodes replay exactly."""

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray: ...


def checked_action(action: Any, act_dim: int, source: str) -> np.ndarray:
    """Reject actions that would reach a robot malformed: wrong shape, NaN or inf."""
    a = np.asarray(action, dtype=np.float32).reshape(-1)
    if a.shape != (act_dim,):
        raise PolicyError(f"{source} returned an action of shape {a.shape}, expected ({act_dim},)")
    if not np.all(np.isfinite(a)):
        raise PolicyError(f"{source} returned a non-finite action {a.tolist()} (NaN or inf); refusing to execute it")
    return a


def check_base_fits(policy: Policy, features: Mapping[str, tuple[int, ...] | None], where: str) -> None:
    """A policy that declares what it reads (a LeRobot checkpoint) is checked against what `where`
    delivers (`features`: key -> shape, None where the size is only known at run time) before
    anything runs; the others meet their first observation unchecked."""
    check = getattr(policy, "check_fits", None)
    if check is not None:
        check(features, where)


def write_policy_manifest(directory: Path, kind: str, env_spec: Mapping[str, Any], demo_seeds: Iterable[int] = (),
                          **extra: Any) -> None:
    """A policy acts on this version's observations: its manifest says so (observation_format), and
    which simulated initial states its demonstrations started from (`demo_seeds`: `eval` warns when
    it is scored on them — a base scored ~20 points higher on its own 20 demonstrations' seeds)."""
    env = {**env_spec, "observation_format": OBSERVATION_FORMAT}
    seeds = {DEMO_SEEDS_FIELD: sorted(set(demo_seeds))} if demo_seeds else {}
    (directory / POLICY_FILE).write_text(json.dumps({"kind": kind, "env": env, **seeds, **extra}, indent=2))


def policy_demo_seeds(manifest: Mapping[str, Any]) -> list[int]:
    """The reset seeds of the demonstrations a policy learned from ([] where none were recorded)."""
    return list(manifest.get(DEMO_SEEDS_FIELD, []))


def read_policy_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / POLICY_FILE
    if not Path(directory).is_dir():
        raise PolicyError(f"policy directory {directory} does not exist")
    if not path.is_file():
        raise PolicyError(f"{directory} is not a robo_reward policy directory: {POLICY_FILE} is missing")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path} is not valid JSON: {exc}") from exc
    for field in ("kind", "env"):
        if field not in manifest:
            raise PolicyError(f"{path}: missing field {field!r}")
    mismatch = observation_format_mismatch(manifest["env"])
    if mismatch:
        raise PolicyError(f"{directory} was trained on {mismatch}: train it again on a dataset recorded with "
                          "this version")
    return {**manifest, "env": spec_with_scene(manifest["env"])}


PolicyLoader = Callable[[Path, Mapping[str, Any], str], Policy]
POLICY_LOADERS: dict[str, PolicyLoader] = {}


def register_policy_kind(kind: str) -> Callable[[PolicyLoader], PolicyLoader]:
    def decorator(loader: PolicyLoader) -> PolicyLoader:
        POLICY_LOADERS[kind] = loader
        return loader

    return decorator


def load_policy(directory: str | Path, device: str = "auto") -> tuple[Policy, dict[str, Any]]:
    """Load any saved policy directory; returns (policy, manifest) — the manifest holds the env spec."""
    # importing the modules registers their kinds
    import robo_reward.rl.bc  # noqa: F401
    import robo_reward.rl.lerobot_policy  # noqa: F401
    import robo_reward.rl.residual_policy  # noqa: F401
    import robo_reward.rl.scripted_policy  # noqa: F401

    manifest = read_policy_manifest(directory)
    loader = POLICY_LOADERS.get(manifest["kind"])
    if loader is None:
        raise PolicyError(
            f"{Path(directory) / POLICY_FILE}: unknown policy kind {manifest['kind']!r}; known: {sorted(POLICY_LOADERS)}"
        )
    return loader(Path(directory), manifest, device), manifest
