"""Scripted-demonstrator success rates and env throughput.

For each (task, robot) and noise level, runs N seeded episodes (env seed = episode index,
demonstrator seed = 1000 + episode index) and records success rate, mean episode length and
env steps/s (env.step only, no cameras). Writes JSON to bench/results/demonstrators.json.

    MUJOCO_GL=egl PYTHONPATH=. python bench/bench_demonstrators.py            # default, < 10 min
    python bench/bench_demonstrators.py --episodes 50 --noise 0 0.5 1.0 --combos lift:Panda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sim import make_demonstrator, make_env


def run_combo(task: str, robot: str, noises: list[float], episodes: int) -> dict:
    env = make_env(task, robot, seed=0)
    out = {
        "task": task,
        "robot": env.robot_name,
        "horizon": env.max_episode_steps,
        "state_dim": env.state_dim,
        "env_state_dim": env.env_state_dim,
        "action_dim": env.action_dim,
        "levels": [],
    }
    for noise in noises:
        demo = make_demonstrator(env, noise=noise)
        successes, lengths = [], []
        step_time, n_steps = 0.0, 0
        t_total = time.perf_counter()
        for ep in range(episodes):
            obs, _ = env.reset(seed=ep)
            demo.reset(seed=1000 + ep)
            info = {"success": False}
            for k in range(env.max_episode_steps):
                a = demo.act(obs)
                t0 = time.perf_counter()
                obs, _, terminated, truncated, info = env.step(a)
                step_time += time.perf_counter() - t0
                n_steps += 1
                if terminated or truncated:
                    break
            successes.append(bool(info["success"]))
            lengths.append(k + 1)
        level = {
            "noise": noise,
            "episodes": episodes,
            "successes": int(sum(successes)),
            "success_rate": float(np.mean(successes)),
            "mean_episode_steps": float(np.mean(lengths)),
            "env_steps_per_s": n_steps / step_time if step_time else None,
            "wall_s": time.perf_counter() - t_total,
        }
        out["levels"].append(level)
        print(
            f"{task:5s} {env.robot_name:6s} noise={noise:<5g} success {level['successes']}/{episodes} "
            f"({level['success_rate']:.0%})  mean_len={level['mean_episode_steps']:.0f}  "
            f"{level['env_steps_per_s']:.0f} steps/s",
            flush=True,
        )
    env.close()
    return out


def camera_throughput(task: str, robot: str, camera: str, size: int, steps: int) -> dict:
    env = make_env(task, robot, cameras=(camera,), image_size=(size, size), seed=0)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(np.zeros(env.action_dim, dtype=np.float32))
    sps = steps / (time.perf_counter() - t0)
    env.close()
    print(f"{task:5s} {robot:6s} with one {size}x{size} camera: {sps:.1f} steps/s", flush=True)
    return {"task": task, "robot": robot, "camera": camera, "size": size, "steps": steps, "env_steps_per_s": sps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--combos", nargs="+", default=["lift:Panda", "can:Panda", "lift:GR1"], help="task:robot pairs")
    p.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.5, 1.0, 1.5])
    p.add_argument("--episodes", type=int, default=10, help="episodes per (combo, noise)")
    p.add_argument("--gr1-episodes", type=int, default=None, help="override --episodes for GR1 (slower)")
    p.add_argument("--camera-steps", type=int, default=50, help="steps for the camera throughput check (0: skip)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "demonstrators.json")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    results = []
    for combo in args.combos:
        task, _, robot = combo.partition(":")
        n = args.episodes
        if robot.upper().startswith("GR1") and args.gr1_episodes is not None:
            n = args.gr1_episodes
        results.append(run_combo(task, robot or "Panda", args.noise, n))
    cams = []
    if args.camera_steps > 0:
        cams.append(camera_throughput("lift", "Panda", "agentview", 84, args.camera_steps))
    report = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "seeding": "env.reset(seed=episode), demonstrator.reset(seed=1000+episode)",
        "results": results,
        "camera_throughput": cams,
        "total_wall_s": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({report['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
