"""What the observation normalizer's std floor does: fitted on the demonstrations, how far out do the
states a base policy visits online land, and how well does a BC base trained with each floor act?

For each floor: a Markov BC base (MLPBCConfig, chunk 1, the floor in its normalizer) per training seed, on the same
20 noisy scripted demos (`make demo`'s setting); its rollouts with Gaussian action noise (std 0.1, the
order of a residual's reach plus exploration) on tuning seeds 500,000+, through the floor's normalizer:
share of entries at the clip, dimensions whose 99th percentile |z| exceeds 5; and the base's own
success over 100 episodes on tuning seeds 900,000+ (nothing here touches the 2,000,000+ report seeds).

    MUJOCO_GL=egl .venv/bin/python bench/bench_normalizer.py            # ~20 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLIP = 10.0


def collect_demos(task: str, episodes: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    from robo_reward.envs.observations import flat_state
    from sim import make_demonstrator, make_env

    env = make_env(task)
    demonstrator = make_demonstrator(env, noise=noise, seed=0)
    states, actions = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        demonstrator.reset(seed=ep)
        done = False
        while not done:
            action = demonstrator.act(obs)
            states.append(flat_state(obs))
            actions.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    env.close()
    return np.asarray(states), np.asarray(actions)


def one_arm(args: tuple) -> dict:
    task, states, actions, floor, seed, rollouts, eval_episodes = args
    import torch

    torch.set_num_threads(1)
    from robo_reward.envs.observations import flat_state
    from robo_reward.rl.bc import MLPBCConfig, train_mlp_bc
    from robo_reward.rl.evaluation import EVAL_SEED_OFFSET, evaluate
    from sim import make_env

    policy, _ = train_mlp_bc(states, actions, MLPBCConfig(seed=seed, obs_std_floor=floor, chunk=1), "cpu", progress=False)
    normalizer = policy.members[0].normalizer
    mean, std = normalizer.mean.numpy(), normalizer.std.numpy()
    env = make_env(task)
    rng = np.random.default_rng(seed)
    visited = []
    for ep in range(rollouts):
        obs, _ = env.reset(seed=500_000 + ep)
        done = False
        while not done:
            visited.append(flat_state(obs))
            action = np.clip(policy.act(obs) + rng.normal(0.0, 0.1, actions.shape[1]), -1, 1).astype(np.float32)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    z = np.abs((np.asarray(visited) - mean) / std)
    p99 = np.percentile(z, 99, axis=0)
    result = evaluate(env, policy, eval_episodes, seed=900_000 - EVAL_SEED_OFFSET, progress=False)
    env.close()
    return {"floor": floor, "seed": seed, "online_states": len(visited),
            "share_at_clip": float(np.mean(z >= CLIP)), "dims_p99_above_5": int(np.sum(p99 > 5)),
            "p99_abs_z": np.round(p99, 2).tolist(), "max_abs_z": float(min(z.max(), CLIP)),
            "base_success": result.success_rate, "base_successes": int(np.sum(result.successes)),
            "eval_episodes": eval_episodes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="lift")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.5)
    p.add_argument("--floors", type=float, nargs="+", default=[1e-3, 1e-2, 3e-2, 1e-1])
    p.add_argument("--seeds", type=int, default=2, help="BC training seeds per floor")
    p.add_argument("--rollouts", type=int, default=20)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "normalizer.json")
    args = p.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")

    t0 = time.perf_counter()
    states, actions = collect_demos(args.task, args.demos, args.noise)
    demo_std = states.std(axis=0)
    jobs = [(args.task, states, actions, f, s, args.rollouts, args.eval_episodes)
            for f in args.floors for s in range(args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        arms = list(pool.map(one_arm, jobs))
    summary = []
    for floor in args.floors:
        rows = [a for a in arms if a["floor"] == floor]
        summary.append({"floor": floor, "dims_below_floor": int(np.sum(demo_std < floor)),
                        "share_at_clip": float(np.mean([r["share_at_clip"] for r in rows])),
                        "dims_p99_above_5": float(np.mean([r["dims_p99_above_5"] for r in rows])),
                        "base_success": float(np.mean([r["base_success"] for r in rows]))})
        print(json.dumps(summary[-1]))
    out = {"task": args.task, "demos": args.demos, "noise": args.noise, "demo_states": len(states),
           "demo_std": np.round(demo_std, 5).tolist(), "summary": summary, "arms": arms,
           "wall_s": round(time.perf_counter() - t0, 1), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
