"""Creating and resuming residual RL runs: one place used by the CLI and the benchmarks.

A run directory is self-contained: run_config.json, a copy of the base policy, checkpoints,
metrics and plots; it is also a policy directory (`robo_reward_policy.json`, kind residual).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo_reward.data.lerobot_io import load_demonstrations, read_env_spec
from robo_reward.envs.observations import flat_state
from robo_reward.envs.wrappers import RewardWrapper
from robo_reward.errors import ConfigError, RoboRewardError
from robo_reward.fileutil import check_output_dir
from robo_reward.rewards import make_reward_source
from robo_reward.rl.buffers import NStepReplayBuffer
from robo_reward.rl.loop import LoopConfig, ResidualTrainer, fill_demo_buffer
from robo_reward.rl.policies import load_policy, read_policy_manifest, write_policy_manifest
from robo_reward.rl.residual import ResidualTD3, ResidualTD3Config
from robo_reward.rl.residual_policy import BASE_SUBDIR, LATEST_CHECKPOINT, RESIDUAL_KIND
from robo_reward.rl.scripted_policy import save_scripted_policy

RUN_CONFIG_FILE = "run_config.json"


def make_sim_env(spec: dict[str, Any], **overrides: Any):
    """The simulated robot for an env spec; unknown names become a ConfigError listing the choices."""
    from sim import make_env

    try:
        return make_env(**{**spec, **overrides})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def copy_base(base: str | Path, spec: dict[str, Any], target: Path, base_noise: float, seed: int) -> None:
    """Copy the base into the run (self-contained runs); 'scripted' writes a scripted-policy manifest."""
    if str(base) == "scripted":
        save_scripted_policy(target, spec, noise=base_noise, seed=seed)
        return
    manifest = read_policy_manifest(base)
    for key in ("task", "robot"):
        if manifest["env"].get(key) != spec.get(key):
            raise ConfigError(f"base policy {base} was trained for {key}={manifest['env'].get(key)!r} "
                              f"but the demonstrations are {key}={spec.get(key)!r}")
    shutil.copytree(base, target)


def create_residual_run(
    out: Path,
    dataset: Path,
    base: str | Path,
    learner_config: ResidualTD3Config,
    loop_config: LoopConfig,
    reward: str = "sparse",
    device: torch.device | str = "cpu",
    base_noise: float = 0.3,
    overwrite: bool = False,
) -> ResidualTrainer:
    out, dataset = Path(out), Path(dataset)
    check_output_dir(out, overwrite)
    spec = read_env_spec(dataset)
    demos = load_demonstrations(dataset)
    reward_source = make_reward_source(reward)
    env = RewardWrapper(make_sim_env(spec), reward_source)
    if out.exists():
        shutil.rmtree(out)
    try:
        copy_base(base, spec, out / BASE_SUBDIR, base_noise, loop_config.seed)
        base_policy, _ = load_policy(out / BASE_SUBDIR, str(device))
        obs_dim = flat_state(demos[0].observations[0]).shape[0]
        learner = ResidualTD3(obs_dim, env.action_space.shape[0], learner_config, device)
        learner.obs_normalizer.fit(np.stack([flat_state(o) for d in demos for o in d.observations]))
        demo_buffer = NStepReplayBuffer(sum(len(d.actions) for d in demos), obs_dim, learner.act_dim,
                                        learner_config.n_step, learner_config.gamma)
        fill_demo_buffer(demo_buffer, demos, base_policy, reward_source)
        run_config = {"env": spec, "reward": reward, "dataset": str(dataset), "base": str(base),
                      "loop": asdict(loop_config), "learner": learner_config.to_dict()}
        (out / RUN_CONFIG_FILE).write_text(json.dumps(run_config, indent=2))
        write_policy_manifest(out, RESIDUAL_KIND, spec, reward=reward)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return ResidualTrainer(out, env, base_policy, learner, demo_buffer, loop_config)


def resume_residual_run(out: Path, total_env_steps: int, device: torch.device | str = "cpu") -> ResidualTrainer:
    out = Path(out)
    if not (out / LATEST_CHECKPOINT).is_dir():
        raise RoboRewardError(f"--resume: {out} has no checkpoint to resume from")
    run = json.loads((out / RUN_CONFIG_FILE).read_text())
    base, _ = load_policy(out / BASE_SUBDIR, str(device))
    env = RewardWrapper(make_sim_env(run["env"]), make_reward_source(run["reward"]))
    loop_config = LoopConfig(**{**run["loop"], "total_env_steps": total_env_steps})
    return ResidualTrainer.resume(out, env, base, loop_config, device)
