"""Where GR1 Lift's cube must lie for the right hand to reach it through the joint limit guard.

The scripted demonstrator (noise 0) acts through `make_policy_env` (the guard every policy acts
through) on tuning seeds, with the centre of the cube's placement range moved sideways by each
offset, under our null-space posture for the right arm and under robosuite's own. Writes
bench/results/gr1_placement.json; docs/BENCHMARKS.md "GR1 cube placement" summarises it.

    MUJOCO_GL=egl PYTHONPATH=. .venv/bin/python bench/bench_gr1_placement.py
"""

from __future__ import annotations

import argparse
import dataclasses
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

from robo_reward.rl.runs import make_policy_env  # noqa: E402
from sim import make_demonstrator  # noqa: E402


def guarded_successes(offset_y: float, robosuite_posture: bool, seeds: range) -> dict:
    env = make_policy_env({"task": "lift", "robot": "GR1"})
    sim_env = env.unwrapped
    # probe only: the task's offset is fixed in sim/robosuite_env.py; LiftTableHeight applies it when it
    # (re)loads its model, so set both the offset and the sampler's centre it set at construction
    lift = sim_env._env
    lift._cube_offset = np.array((0.0, offset_y, 0.0))
    lift.placement_initializer.reference_pos = lift.table_offset + lift._cube_offset
    if robosuite_posture:
        sim_env._robot_spec = dataclasses.replace(sim_env._robot_spec, nullspace_posture=())
    wins, t0 = 0, time.perf_counter()
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        demonstrator = make_demonstrator(sim_env, noise=0.0, seed=seed)
        demonstrator.reset(seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(demonstrator.act(obs))
            done = terminated or truncated
        wins += bool(info["is_success"])
    env.close()
    row = {"offset_y": offset_y, "posture": "robosuite" if robosuite_posture else "ours",
           "successes": wins, "episodes": len(seeds), "wall_s": time.perf_counter() - t0}
    print(f"offset {offset_y:+.2f} m, {row['posture']:9s} posture: {wins}/{len(seeds)} guarded", flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--offsets", nargs="+", type=float, default=[0.0, -0.05, -0.1, -0.15, -0.2, -0.25],
                   help="sideways shifts of the placement centre, m (negative: the right hand's side)")
    p.add_argument("--robosuite-posture-offsets", nargs="*", type=float, default=[-0.15, -0.2])
    p.add_argument("--first-seed", type=int, default=20, help="tuning seeds (below 1,000,000)")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gr1_placement.json")
    args = p.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    rows = [guarded_successes(dy, False, seeds) for dy in args.offsets]
    rows += [guarded_successes(dy, True, seeds) for dy in args.robosuite_posture_offsets]
    report = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
              "seeds": [seeds.start, seeds.stop - 1], "demonstrator_noise": 0.0, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
