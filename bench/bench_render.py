"""What a camera frame costs the env step, and what the learned reward costs on top, on this CPU.

  MUJOCO_GL=egl python bench/bench_render.py                 # -> bench/results/render_cost_cpu.json
  MUJOCO_GL=egl python bench/bench_render.py --robot GR1 --cameras frontview robot0_eye_in_right_hand

One run measures, interleaved round by round so that load from other work falls on every row alike:
env steps/s of Panda Lift with no camera, with the two 64x64 cameras drawn by each render preset, and
the closed loop's step (the same env step plus the hop + success-classifier reward of `reward combine`
streaming on its frames, random weights: the cost does not depend on their values). Also the reward
models alone: one frame at a time (the online stream) and a recorded episode scored in one batch.
Every figure is the median over rounds; ratios are taken within a round, then the median.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from robo_reward.envs.rendering import RENDER_PRESETS
from robo_reward.rewards.base import Episode
from robo_reward.rewards.classifier import SuccessClassifier, SuccessNet, SuccessNetConfig
from robo_reward.rewards.combined import ProgressSuccessReward
from robo_reward.rewards.process import HopNet, HopNetConfig, ProcessReward, TrainedHopPredictor
from robo_reward.rewards.registry import frames_from_obs
from sim import make_env

RESULTS = Path(__file__).parent / "results"
TASK_TEXT = "lift the red cube"


def reward_models(cameras: list[str], size: int, goal: dict[str, np.ndarray]) -> dict:
    """The two reward models of the closed loop and their `reward combine` pair (random weights)."""
    cpu = torch.device("cpu")
    hop = ProcessReward(TrainedHopPredictor(HopNet(HopNetConfig(cameras=tuple(cameras), image_size=size)), cpu), goal)
    classifier = SuccessClassifier(SuccessNet(SuccessNetConfig(cameras=tuple(cameras), image_size=size)), cpu)
    return {"hop": hop, "classifier": classifier, "hop + classifier": ProgressSuccessReward(hop, classifier)}


def env_rate(env, seconds: float, seed: int, reward=None) -> float:
    """Env steps/s under uniform random actions (episodes reset at their end), with `reward`
    streaming on every frame when given."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    stream = reward.stream(TASK_TEXT) if reward is not None else None
    if stream is not None:
        stream.reset(frames_from_obs(obs))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_dim).astype(np.float32))
        if stream is not None:
            stream.step(frames_from_obs(obs))
        steps += 1
        if terminated or truncated:
            obs, _ = env.reset()
            if stream is not None:
                stream.reset(frames_from_obs(obs))
    return steps / (time.perf_counter() - start)


def call_rate(fn, items: int, seconds: float) -> float:
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += items
    return count / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="lift")
    p.add_argument("--robot", default="Panda")
    p.add_argument("--cameras", nargs="+", default=["agentview", "robot0_eye_in_hand"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8.0, help="per row and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the reward models")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size = (args.size, args.size)
    envs = {"no camera": make_env(args.task, args.robot, seed=0)}
    renders = {"fast": RENDER_PRESETS["fast"],  # the default; the next row: as it was before 2026-12-03
               "fast without collision meshes": replace(RENDER_PRESETS["fast"], collision_meshes=False),
               "robosuite": RENDER_PRESETS["robosuite"]}
    for name, render in renders.items():
        envs[f"{len(args.cameras)} cameras, {name}"] = make_env(args.task, args.robot, cameras=args.cameras,
                                                                image_size=size, render=render, seed=0)
    fast = envs[f"{len(args.cameras)} cameras, fast"]
    obs, _ = fast.reset(seed=0)
    models = reward_models(args.cameras, args.size, frames_from_obs(obs))
    rows = {**{name: (env, None) for name, env in envs.items()},
            "closed loop: fast cameras + hop + classifier": (fast, models["hop + classifier"])}
    rounds: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(args.rounds):
        for name, (env, reward) in rows.items():
            rounds[name].append(env_rate(env, args.seconds, seed=r, reward=reward))
            print(f"round {r}: {name}: {rounds[name][-1]:.1f} steps/s", flush=True)
    base = rounds["no camera"]
    env_rows = {name: {"steps_per_s": statistics.median(rates), "rounds": rates,
                       "cost_vs_no_camera": statistics.median(b / x for b, x in zip(base, rates))}
                for name, rates in rounds.items()}

    # the reward models alone: the online stream (one frame per step) and an episode in one batch
    frames = {c: np.stack([fast.step(fast.action_space.sample())[0][f"observation.images.{c}"] for _ in range(64)])
              for c in args.cameras}
    episode = Episode(frames, TASK_TEXT)
    model_rows = {}
    for name, model in models.items():
        stream = model.stream(TASK_TEXT)
        stream.reset({c: frames[c][0] for c in args.cameras})
        online = call_rate(lambda: stream.step({c: frames[c][1] for c in args.cameras}), 1, args.seconds)
        batched = call_rate(lambda: model.score_episode(episode), 64, args.seconds)
        model_rows[name] = {"online_frames_per_s": online, "episode_frames_per_s": batched}
        print(f"{name}: online {online:.1f} frames/s, episode of 64 in one batch {batched:.1f} frames/s", flush=True)
    for env in envs.values():
        env.close()
    results = {
        "command": "python bench/bench_render.py " + " ".join(os.sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, MUJOCO_GL={os.environ['MUJOCO_GL']}, "
                   f"torch {torch.__version__} ({args.threads} thread)",
        "settings": vars(args), "env": env_rows, "reward_models": model_rows,
        "render_presets": {k: v.to_dict() for k, v in RENDER_PRESETS.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "" if (args.task, args.robot) == ("lift", "Panda") else f"_{args.task}_{args.robot}"
    out = RESULTS / f"render_cost_cpu{tag}.json"
    out.write_text(json.dumps(results, indent=2))
    for name, row in env_rows.items():
        print(f"{name:48s} {row['steps_per_s']:7.1f} steps/s   x{row['cost_vs_no_camera']:.2f} a state-only step")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
