"""Scripted waypoint controllers from sim/ as base policies (`--base scripted`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robo_reward.rl.policies import Policy, register_policy_kind, write_policy_manifest

SCRIPTED_KIND = "scripted"


def save_scripted_policy(directory: Path, env_spec: Mapping[str, Any], noise: float, seed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_policy_manifest(directory, SCRIPTED_KIND, env_spec, noise=noise, seed=seed)


@register_policy_kind(SCRIPTED_KIND)
def load_scripted_policy(directory: Path, manifest: Mapping[str, Any], device: str) -> Policy:
    from robo_reward.rl.runs import make_sim_env
    from sim.demonstrators import make_demonstrator

    # the demonstrator reads task constants (e.g. the target bin) from an env of the same spec
    env = make_sim_env(dict(manifest["env"]))
    return make_demonstrator(env, noise=float(manifest.get("noise", 0.0)), seed=manifest.get("seed"))
