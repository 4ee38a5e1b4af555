"""The joint limit guard (robo_reward.envs.limits) vs raw commands, on the same policies and seeds.

  python bench/bench_limit_guard.py                  # 100 episodes per policy and arm, seeds 2,000,000+
  python bench/bench_limit_guard.py --episodes 20    # a quick look

Policies on Panda Lift (home pose as after a robot reset): the noisy scripted demonstrator (noise 0.3),
a BC base trained on 20 noisy demos (the transport bench's, made if missing), and that base with
Gaussian exploration noise (std 0.1) on its arm elements, as a residual learner explores. Each runs
once with raw commands and once through the guard, under a safety monitor fed every step with the sim
robot's hardware config (sim_panda_lift): how many episodes the monitor would have stopped (and for
what), successes (Wilson 95% intervals) and how often the guard changed a command. The two arms run
as two processes (both cores). Writes bench/results/limit_guard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench_transport import cli, wilson  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEED0 = 2_000_000
POLICIES = ("scripted-noise0.3", "bc-base", "bc-base+exploration0.1")


def run_arm(guard: bool, policy_name: str, base_dir: Path, episodes: int) -> dict:
    """One policy, guarded or raw, for `episodes` seeded episodes under a safety monitor."""
    import tempfile

    from robo_reward.config.hardware import sim_hardware_config
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_policy_env, make_sim_env
    from robo_reward.rl.scripted_policy import save_scripted_policy
    from robo_reward.safety.monitor import SafetyMonitor

    cfg = sim_hardware_config("lift", "Panda")
    spec = {"task": "lift", "robot": "Panda"}
    env = make_policy_env(spec) if guard else make_sim_env(spec)
    if policy_name.startswith("scripted"):
        directory = Path(tempfile.mkdtemp()) / "scripted"
        save_scripted_policy(directory, spec, noise=0.3, seed=5)
        policy = load_policy(directory, "cpu")[0]
    else:
        policy = load_policy(base_dir, "cpu")[0]
    noise = 0.1 if "exploration" in policy_name else 0.0
    rng = np.random.default_rng(SEED0)
    stops, successes, steps, scaled = Counter(), 0, 0, 0
    for episode in range(episodes):
        seed = SEED0 + episode
        monitor = SafetyMonitor(cfg, require_ee_pose=False, require_wrench=False)
        obs, _ = env.reset(seed=seed, options={"arm_joints": cfg.home.positions})
        policy.reset(seed)
        t = 0
        while True:
            action = np.asarray(policy.act(obs), np.float32)
            if noise:
                action[:6] = np.clip(action[:6] + rng.normal(0.0, noise, 6), -1.0, 1.0)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            scaled += info.get("limit_change", 0.0) > 1e-6
            state = env.unwrapped.joint_state()
            violation = monitor.update_joints(t * 0.05, state["names"], list(state["positions"]),
                                              list(state["velocities"]), t * 0.05)
            t += 1
            if violation is not None:
                stops[f"{violation.kind} {violation.detail.split()[0]}"] += 1
                break
            if terminated or truncated:
                successes += bool(info["success"])
                break
    env.close()
    stopped = sum(stops.values())
    return {"episodes": episodes, "safety_stops": stopped, "stops_wilson95": wilson(stopped, episodes),
            "stops_by_cause": dict(stops), "successes": successes, "success_wilson95": wilson(successes, episodes),
            "steps": steps, "limited_step_fraction": scaled / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/bench/transport")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--arm", choices=["raw", "guard"], help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    work = Path(args.work)
    base = work / "base"
    if args.arm:
        result = {p: run_arm(args.arm == "guard", p, base, args.episodes) for p in POLICIES}
        print(json.dumps(result))
        return
    demos = work / "demos"
    if not demos.exists():
        cli(["demos", "collect", "--task", "lift", "--episodes", "20", "--noise", "0.5", "--out", str(demos)])
    if not base.exists():
        cli(["base", "train", "--dataset", str(demos), "--chunk", "1", "--out", str(base)])  # as measured
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    children = {arm: subprocess.Popen([sys.executable, __file__, "--work", str(work), "--episodes", str(args.episodes),
                                       "--arm", arm], stdout=subprocess.PIPE, text=True, env=env)
                for arm in ("raw", "guard")}
    arms = {}
    for arm, child in children.items():
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"{arm} arm failed (exit {child.returncode})")
        arms[arm] = json.loads(out.strip().splitlines()[-1])
    summary = {p: {"stops_raw": arms["raw"][p]["safety_stops"], "stops_guard": arms["guard"][p]["safety_stops"],
                   "success_raw": arms["raw"][p]["successes"], "success_guard": arms["guard"][p]["successes"]}
               for p in POLICIES}
    record = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "episodes": args.episodes, "seeds": f"{SEED0}..{SEED0 + args.episodes - 1}",
              "wall_s": time.perf_counter() - started, "arms": arms, "summary": summary,
              "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "limit_guard.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
