"""Creating and resuming residual RL runs: one place used by the CLI and the benchmarks.

A run directory is self-contained: run_config.json, a copy of the base policy, checkpoints,
metrics and plots; it is also a policy directory (`robo_reward_policy.json`, kind residual).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo_reward.data.lerobot_io import dataset_features, load_demonstrations, read_env_spec, read_episode_seeds
from robo_reward.envs.observations import IMAGE_PREFIX, flat_state
from robo_reward.envs.rendering import DEFAULT_RENDER, RENDER_KEY, render_mismatch, spec_with_render
from robo_reward.envs.scenes import SCENE_KEY
from robo_reward.envs.wrappers import RewardWrapper
from robo_reward.errors import ConfigError, RoboRewardError
from robo_reward.fileutil import refuse_output_inside_inputs, staged_dir
from robo_reward.rewards import RewardSpec, make_reward_source, reward_rule
from robo_reward.rewards.shaping import RewardRule
from robo_reward.rl.buffers import NStepReplayBuffer
from robo_reward.rl.checkpoint import readable_checkpoint
from robo_reward.rl.loop import LoopConfig, ResidualTrainer, demo_readings, fill_demo_buffer
from robo_reward.rl.policies import (
    Policy,
    check_base_fits,
    load_policy,
    policy_demo_seeds,
    read_policy_manifest,
    write_policy_manifest,
)
from robo_reward.rl.learner_config import PlainConfig
from robo_reward.rl.learners import LEARNERS, RESIDUAL_TD3, kind_of, make_learner
from robo_reward.rl.residual_policy import BASE_SUBDIR, LATEST_CHECKPOINT, RESIDUAL_KIND
from robo_reward.rl.scripted_policy import save_scripted_policy

RUN_CONFIG_FILE = "run_config.json"


def learner_config(overrides: Sequence[str], seed: int, learner: str = RESIDUAL_TD3):
    """The learner's defaults (ResFiT's for residual TD3) + `KEY=VALUE` overrides, each converted to its
    field's type and validated."""
    config_class = LEARNERS[learner].config
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {"seed": seed}
    for pair in overrides:
        key, sep, raw = pair.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
        default = fields[key].default
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"--set {pair!r}: {raw!r} is not a number, list or null") from None
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default not in (None, dataclasses.MISSING) and not isinstance(value, (type(default), list)):
            raise ConfigError(f"--set {pair!r}: expected a {type(default).__name__}, got {raw!r}")
        values[key] = value
    try:
        return config_class(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid learner settings: {exc}") from None


def make_sim_env(spec: dict[str, Any], **overrides: Any):
    """The simulated robot for an env spec; unknown names become a ConfigError listing the choices."""
    from sim import make_env

    try:
        return make_env(**{**spec_with_render(spec, "env spec"), **overrides})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def make_policy_env(spec: dict[str, Any], **overrides: Any):
    """The simulated robot a policy acts on: commands pass the same joint limit guard, with the same
    limits (the sim robot's hardware config), as on the robot path."""
    from robo_reward.config.hardware import sim_hardware_config
    from robo_reward.envs.limits import JointLimitGuard, JointLimits

    env = make_sim_env(spec, **overrides)
    return JointLimitGuard(env, JointLimits.from_hardware(sim_hardware_config(env.task, env.robot_name)))


def copy_base(base: str | Path, spec: dict[str, Any], target: Path, base_noise: float, seed: int) -> None:
    """Copy the base into the run (self-contained runs); 'scripted' writes a scripted-policy manifest."""
    if str(base) == "scripted":
        save_scripted_policy(target, spec, noise=base_noise, seed=seed)
        return
    manifest = read_policy_manifest(base)
    for key in ("task", "robot", SCENE_KEY):
        if manifest["env"].get(key) != spec.get(key):
            raise ConfigError(f"base policy {base} was trained for {key}={manifest['env'].get(key)!r} "
                              f"but the demonstrations are {key}={spec.get(key)!r}")
    shutil.copytree(base, target)


def training_env_spec(spec: dict[str, Any], reward_source) -> dict[str, Any]:
    """The env the learner trains in: a reward model needs its cameras rendered, and with a learned
    reward the simulator's success check no longer ends episodes (it is only logged and evaluated):
    the model's success call does (RewardWrapper), as on a robot."""
    cameras = tuple(getattr(reward_source, "cameras", ()))
    if not cameras:
        return dict(spec)
    size = getattr(reward_source, "image_size", None) or spec.get("image_size", [84, 84])
    merged = list(dict.fromkeys([*spec.get("cameras", []), *cameras]))
    render = spec.get(RENDER_KEY)
    model_render = getattr(reward_source, "render_settings", None)
    if model_render is not None:
        mismatch = render_mismatch(reward_source.name, model_render, render if spec.get("cameras") else None,
                                   "the demonstrations' env")
        if mismatch:
            raise ConfigError(mismatch)
        render = model_render
    return {**spec, "cameras": merged, "image_size": list(size), "terminate_on_success": False,
            RENDER_KEY: render if render is not None else DEFAULT_RENDER.to_dict()}


CAMERA_FIELDS = ("cameras", "image_size", RENDER_KEY)  # an env spec's fields that only say how frames are drawn


def policy_env_spec(spec: dict[str, Any], base: Policy) -> dict[str, Any]:
    """The env a residual policy acts in (its manifest): the demonstrations' env, with cameras only if
    its base reads images. Cameras recorded for a reward model are the reward's: training draws them
    (training_env_spec); evaluating or deploying the policy alone need not pay for frames nobody reads
    (two 64 px cameras cost ~1.5 state-only steps on every step). Frames never change the physics."""
    if any(key.startswith(IMAGE_PREFIX) for key in getattr(base, "input_shapes", {})):
        return dict(spec)
    return {k: v for k, v in spec.items() if k not in CAMERA_FIELDS}


def write_residual_manifest(run: Path, spec: dict[str, Any], base_policy: Policy, reward: RewardSpec,
                            dataset: Path) -> None:
    """A residual policy's manifest: the env it acts in, its reward, and every demonstration seed it
    learned from — its own dataset's, its base's (`run`/BASE_SUBDIR holds the copied base) and its
    reward model's."""
    base_seeds = policy_demo_seeds(read_policy_manifest(run / BASE_SUBDIR))  # copy_base always writes one
    write_policy_manifest(run, RESIDUAL_KIND, policy_env_spec(spec, base_policy),
                          [*read_episode_seeds(dataset), *base_seeds, *reward_demo_seeds(reward)], reward=asdict(reward))


def reward_demo_seeds(reward: RewardSpec) -> list[int]:
    """The seeds a learned reward's model trained on ([] for the sparse reward, a CLIP name or open_clip
    weights, which saw no episode of ours)."""
    from robo_reward.rewards.registry import reward_model_demo_seeds
    from robo_reward.rewards.vision import MANIFEST

    if reward.model is None or not (Path(reward.model) / MANIFEST).is_file():
        return []
    return reward_model_demo_seeds(reward.model)


def reward_readings_of_demos(dataset: Path, demos, reward_source) -> list:
    """The reward source's readings of the demonstrations: a reward model scores their recorded
    camera videos; the sparse reward reads their recorded success."""
    if not hasattr(reward_source, "episode_readings"):
        return demo_readings(demos, reward_source)
    from robo_reward.data.episodes import load_episodes

    episodes = load_episodes(dataset, list(reward_source.cameras), [d.episode_index for d in demos])
    return demo_readings(demos, reward_source, [e.episode for e in episodes])


def build_learner(demos, base_policy, act_dim: int, learner_config, readings, rule,
                  device, extra_demo_capacity: int = 0):
    """A fresh learner of the config's kind (normalization fitted on the demonstrations) and its
    demonstration buffer; `extra_demo_capacity` leaves room for operator interventions added as
    demonstrations later, which never overwrite the demonstrations themselves."""
    obs_dim = flat_state(demos[0].observations[0]).shape[0]
    try:
        learner = make_learner(obs_dim, act_dim, learner_config, device)
    except ValueError as exc:  # settings that do not fit this env (e.g. a residual bound per dimension)
        raise ConfigError(f"invalid learner settings: {exc}") from None
    learner.fit_observations(np.stack([flat_state(o) for d in demos for o in d.observations]))
    demo_buffer = NStepReplayBuffer(sum(len(d.actions) for d in demos) + extra_demo_capacity, obs_dim, act_dim,
                                    learner_config.n_step, learner_config.gamma)
    fill_demo_buffer(demo_buffer, demos, base_policy, readings, rule)
    demo_buffer.keep_stored()
    return learner, demo_buffer


@dataclasses.dataclass
class NewRun:
    """What every new residual run starts from, simulated or on a robot (`start_run`)."""

    train_spec: dict[str, Any]  # the env it learns in (training_env_spec)
    reward_source: Any
    rule: RewardRule
    base_policy: Policy
    learner: Any
    demo_buffer: NStepReplayBuffer


def start_run(staging: Path, dataset: Path, base: str | Path, learner_config: PlainConfig, reward: RewardSpec,
              device: torch.device | str, base_noise: float, seed: int, extra_demo_capacity: int = 0) -> NewRun:
    """Into a new run's staging directory: the base (copied, checked against the dataset), the
    reward (source and rule), the learner with its demonstration buffer and the policy manifest.
    `rl train` and the robot learner both start here; each then writes its own run config."""
    spec = read_env_spec(dataset)
    demos = load_demonstrations(dataset)
    reward_source = make_reward_source(reward, str(device))
    rule = reward_rule(reward, reward_source, learner_config.gamma)
    copy_base(base, spec, staging / BASE_SUBDIR, base_noise, seed)
    base_policy, _ = load_policy(staging / BASE_SUBDIR, str(device))
    check_base_fits(base_policy, dataset_features(dataset), f"the dataset {dataset}")
    learner, demo_buffer = build_learner(demos, base_policy, int(np.asarray(demos[0].actions).shape[1]),
                                         learner_config, reward_readings_of_demos(dataset, demos, reward_source),
                                         rule, device, extra_demo_capacity)
    write_residual_manifest(staging, spec, base_policy, reward, dataset)
    return NewRun(training_env_spec(spec, reward_source), reward_source, rule, base_policy, learner, demo_buffer)


def create_residual_run(
    out: Path,
    dataset: Path,
    base: str | Path,
    learner_config: PlainConfig,
    loop_config: LoopConfig,
    reward: RewardSpec | str = "sparse",
    device: torch.device | str = "cpu",
    base_noise: float = 0.3,
    overwrite: bool = False,
    local_env: bool = True,
) -> ResidualTrainer:
    """Build a run in a staged sibling of `out` (validated base, demo buffer, step-0 checkpoint);
    it replaces `out` only once complete, so a failed start never destroys an earlier run.
    `local_env` False: no env here — its episodes will run elsewhere (runtime.actor_process)."""
    out, dataset = Path(out), Path(dataset)
    refuse_output_inside_inputs(out, [dataset] + ([] if str(base) == "scripted" else [Path(base)]))
    reward = (RewardSpec(source=reward) if isinstance(reward, str) else reward).located()
    with staged_dir(out, overwrite) as staging:
        run = start_run(staging, dataset, base, learner_config, reward, device, base_noise, loop_config.seed)
        env = RewardWrapper(make_policy_env(run.train_spec), run.reward_source) if local_env else None
        run_config = {"env": run.train_spec, "reward": asdict(reward), "dataset": str(dataset), "base": str(base),
                      "loop": asdict(loop_config), "learner_kind": kind_of(learner_config),
                      "learner": learner_config.to_dict()}
        (staging / RUN_CONFIG_FILE).write_text(json.dumps(run_config, indent=2))
        trainer = ResidualTrainer(staging, env, run.base_policy, run.learner, run.demo_buffer, loop_config, run.rule)
        trainer.checkpoint()  # a run directory always holds a resumable checkpoint
    trainer.run_dir = out
    return trainer


def resume_residual_run(out: Path, total_env_steps: int | None, device: torch.device | str = "cpu",
                        local_env: bool = True) -> ResidualTrainer:
    out = Path(out)
    if not readable_checkpoint(out / LATEST_CHECKPOINT).is_dir():
        raise RoboRewardError(f"--resume: {out} has no checkpoint to resume from")
    try:
        run = json.loads((out / RUN_CONFIG_FILE).read_text())
        loop_config = LoopConfig(**{**run["loop"], "total_env_steps": total_env_steps or run["loop"]["total_env_steps"]})
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RoboRewardError(f"--resume: {out / RUN_CONFIG_FILE} is missing or malformed ({exc})") from exc
    base, _ = load_policy(out / BASE_SUBDIR, str(device))
    learner_gamma = run.get("learner", {}).get("gamma", 0.99)
    spec = RewardSpec.from_json(run["reward"])
    source = make_reward_source(spec, str(device))
    env = RewardWrapper(make_policy_env(run["env"]), source) if local_env else None
    return ResidualTrainer.resume(out, env, base, loop_config, reward_rule(spec, source, learner_gamma), device)
