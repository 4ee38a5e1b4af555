"""The robot path (sim robot behind ROS 2 topics, actor and learner nodes) vs `rl train` in-process,
same demos, base and learner settings, measured in one run.

  python bench/bench_robot_path.py                       # 3000 env steps each, then 20 evaluation episodes
  python bench/bench_robot_path.py --steps 1500 --eval-episodes 10

1. in-process `rl train --in-process`: env steps/s and update time per step (metrics.json timing);
2. `ros up --lockstep` (state-only sim Panda Lift: sim robot, actor, learner, safety monitor, reset
   manager) until the learner has the same number of env steps: env steps/s and learner updates/s
   from its heartbeats, the real-time factor (env steps/s over the 20 Hz control rate: a robot is
   paced at its control rate, so 1.0 is the ceiling), the update-to-data ratio it reached, and how
   episodes ended (success / time limit / safety);
3. evaluation of the robot-trained run, exploration off, on the robot path (`ros up --policy RUN
   --no-explore`) and in-process (`robo-reward eval`), each with its success and Wilson interval.
Writes bench/results/robot_path.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import yaml  # noqa: E402

from bench_transport import cli, wait_until, wilson  # noqa: E402

RESULTS = Path(__file__).parent / "results"
LEARNER = ["utd_ratio=1", "actor_lr=1e-5", "critic_lr=3e-4"]
CONTROL_HZ = 20.0


class Watcher:
    """Heartbeats and episode outcomes of a running stack."""

    def __init__(self, domain: int):
        from std_msgs.msg import String

        from ros_nodes.common import LATCHED, RELIABLE
        from ros_nodes.runner import BackgroundNode

        self.node = BackgroundNode("bench_robot_path", domain)
        self.heartbeats: list[tuple[float, dict]] = []
        self.outcomes: dict[int, dict] = {}
        self.node.node.create_subscription(String, "/robo_reward/learner_heartbeat", lambda m: self.heartbeats.append(
            (time.monotonic(), json.loads(m.data))), RELIABLE)
        self.node.node.create_subscription(String, "/robo_reward/episode", self.on_episode, LATCHED)

    def on_episode(self, msg) -> None:
        outcome = json.loads(msg.data).get("outcome")
        if outcome:
            self.outcomes[outcome["episode"]] = outcome

    def wait(self, predicate, timeout_s: float, what: str) -> None:
        wait_until(predicate, timeout_s, what)


def stack(config: Path, args: list[str], domain: int, log: Path) -> subprocess.Popen:
    from ros_nodes.runner import ros_up_process

    return ros_up_process(config, ["--lockstep", "--device", "cpu", "--max-episode-steps", "100", *args], domain, log)


def main() -> None:
    from ros_nodes.runner import interrupt_and_wait

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/bench/robot_path")
    parser.add_argument("--demos", default="runs/bench/transport/demos", help="reused when present")
    parser.add_argument("--base", default="runs/bench/transport/base", help="reused when present")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    demos, base = Path(args.demos), Path(args.base)
    if not demos.exists():
        demos = work / "demos"
        cli(["demos", "collect", "--task", "lift", "--episodes", "20", "--noise", "0.5", "--out", str(demos),
             "--overwrite"])
    if not base.exists():
        base = work / "base"
        cli(["base", "train", "--dataset", str(demos), "--chunk", "1", "--out", str(base), "--overwrite"])  # as measured
    sets = [x for s in LEARNER for x in ("--set", s)]

    # 1. in-process
    cli(["rl", "train", "--in-process", "--base", str(base), "--dataset", str(demos), "--steps", str(args.steps),
         *sets, "--eval-every", str(args.steps), "--eval-episodes", "1", "--out", str(work / "in_process"),
         "--overwrite", "--quiet"], "1")
    timing = json.loads((work / "in_process" / "metrics.json").read_text())["timing"]
    steps = json.loads((work / "in_process" / "metrics.json").read_text())["evals"][-1]["env_step"]
    in_process = {"env_steps": steps, "env_steps_per_s": steps / (timing["wall_s"] - timing["eval_s"]),
                  "updates_per_s": (steps - 1000) / timing["update_s"] if timing["update_s"] else 0.0}

    # 2. the robot path
    config = yaml.safe_load((Path(__file__).parents[1] / "hardware_configs" / "sim_panda_lift.yaml").read_text())
    config["cameras"] = []
    config_path = work / "sim_panda_lift_state.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = work / "robot_run"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    domain = random.randint(10, 99)
    watcher = Watcher(domain)
    proc = stack(config_path, ["--base", str(base), "--dataset", str(demos), "--run-dir", str(run), *sets,
                               "--only", "sim_robot", "actor", "learner", "safety_monitor", "reset_manager"],
                 domain, work / "robot.log")
    try:
        watcher.wait(lambda: watcher.heartbeats and watcher.heartbeats[-1][1]["env_step"] >= args.steps,
                     args.steps / 2 + 600, f"{args.steps} env steps on the robot path")
    finally:
        interrupt_and_wait(proc, 60)
    beats = [(t, b) for t, b in watcher.heartbeats if b["env_step"] > 1000]  # steady state: learning
    (t0, b0), (t1, b1) = beats[0], beats[-1]
    robot = {"env_steps": b1["env_step"], "env_steps_per_s": (b1["env_step"] - b0["env_step"]) / (t1 - t0),
             "updates_per_s": (b1["updates"] - b0["updates"]) / (t1 - t0), "utd_reached": b1["utd_reached"],
             "utd_configured": b1["utd_configured"], "skipped_updates": b1["skipped_updates"],
             "episode_ends": dict(Counter(o["source"] for o in watcher.outcomes.values())),
             "metrics_json": (run / "metrics.json").is_file()}
    robot["real_time_factor"] = robot["env_steps_per_s"] / CONTROL_HZ
    watcher.node.close()

    # 3. evaluation of the robot-trained run, on the robot path and in-process
    domain = random.randint(10, 99)
    watcher = Watcher(domain)
    proc = stack(config_path, ["--policy", str(run), "--no-explore", "--only", "sim_robot", "actor",
                               "safety_monitor", "reset_manager"], domain, work / "eval.log")
    try:
        watcher.wait(lambda: len(watcher.outcomes) >= args.eval_episodes, args.eval_episodes * 30 + 120,
                     "evaluation episodes")
    finally:
        interrupt_and_wait(proc, 60)
    outcomes = [watcher.outcomes[e] for e in sorted(watcher.outcomes)[:args.eval_episodes]]
    wins = sum(o["success"] for o in outcomes)
    watcher.node.close()
    cli(["eval", "--policy", str(run), "--episodes", str(args.eval_episodes), "--videos", "0", "--out",
         str(work / "eval_in_process"), "--overwrite", "--quiet"])
    here = json.loads((work / "eval_in_process" / "eval.json").read_text())
    evaluation = {"robot_path": {"success": wins / len(outcomes), "wilson95": wilson(wins, len(outcomes)),
                                 "episodes": len(outcomes), "ends": dict(Counter(o["source"] for o in outcomes))},
                  "in_process": {"success": here["success_rate"], "episodes": here["episodes"],
                                 "wilson95": wilson(sum(here["successes"]), here["episodes"])}}
    record = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "learner": LEARNER,
              "in_process": in_process, "robot_path": robot, "evaluation": evaluation,
              "robot_vs_in_process_env_steps": robot["env_steps_per_s"] / in_process["env_steps_per_s"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "robot_path.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
