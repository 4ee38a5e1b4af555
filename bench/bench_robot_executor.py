"""The robot process's executor with and without rclpy's default subscription event handlers, in one run.

  python bench/bench_robot_executor.py                 # 20 s per phase, both variants
  python bench/bench_robot_executor.py --phase-s 30

The sim robot stack of the rehearsal test (sim Panda Lift, front camera, a tiny CLIP reward server,
actor, safety monitor, reset manager) runs in one `ros up` process at its 20 Hz control rate; a
learner joins in a second process and is then killed (SIGKILL), as the rehearsal test does. For each
phase — robot alone, learner running, learner killed — it records the robot process's CPU (cores,
its own threads; the simulator's child process apart), the commands per second an observer
receives, and how episodes ended. Two variants, same inputs and domain settings:
  - `stack`: the nodes as shipped (ros_nodes.common.StackNode: no subscription event handlers);
  - `rclpy_default_events`: the same nodes with rclpy's default subscription event handlers back.
Writes bench/results/robot_executor.json.
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

import yaml
from bench_robot_path import Watcher
from bench_transport import cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny CLIP the rehearsal test builds

CONTROL_HZ = 20.0
ROBOT_NODES = ["sim_robot", "reward_server", "actor", "safety_monitor", "reset_manager"]
# the peer: rclpy's Node.create_subscription (default event handlers) in place of StackNode's
DEFAULT_EVENTS = ("import sys, rclpy.node, ros_nodes.common as common\n"
                  "common.StackNode.create_subscription = rclpy.node.Node.create_subscription\n"
                  "from robo_reward.cli import main\n"
                  "sys.exit(main(sys.argv[1:]))\n")


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Observer(Watcher):
    """The robot path's watcher (episode outcomes), also counting the commands that reach another
    process and keeping the actor's status."""

    def __init__(self, domain: int):
        from std_msgs.msg import Float64MultiArray, String

        from ros_nodes.common import LATCHED, RELIABLE

        super().__init__(domain)
        self.commands = 0
        self.actor: dict = {}
        n = self.node.node
        n.create_subscription(Float64MultiArray, "/robo_reward/command", self.on_command, RELIABLE)
        n.create_subscription(String, "/robo_reward/actor_status", lambda m: setattr(self, "actor", json.loads(m.data)),
                              LATCHED)

    def on_command(self, msg) -> None:
        self.commands += 1


def measure(observer: Observer, robot: subprocess.Popen, seconds: float) -> dict:
    cpu, commands, ended, start = process_cpu_s(robot.pid), observer.commands, set(observer.outcomes), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    new = [outcome["source"] for episode, outcome in observer.outcomes.items() if episode not in ended]
    return {"robot_cpu_cores": round((process_cpu_s(robot.pid) - cpu) / wall, 3),
            "commands_per_s": round((observer.commands - commands) / wall, 2),
            "episode_ends": dict(Counter(new))}


def run_variant(name: str, config: Path, common: list[str], work: Path, phase_s: float) -> dict:
    from ros_nodes.runner import FASTDDS_PROFILE, interrupt_and_wait, ros_up_process

    domain = random.randint(100, 200)
    observer = Observer(domain)
    args = ["ros", "up", str(config), *common, "--run-dir", str(work / f"{name}_learner")]
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
           "PYTHONUNBUFFERED": "1"}
    log = open(work / f"{name}_robot.log", "w")
    robot_cmd = [sys.executable, "-m", "robo_reward.cli"] if name == "stack" else [sys.executable, "-c", DEFAULT_EVENTS]
    robot = subprocess.Popen([*robot_cmd, *args, "--only", *ROBOT_NODES], env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    learner = None
    phases = {}
    try:
        observer.wait(lambda: observer.commands > 0, 300, "the robot's first command")
        time.sleep(phase_s / 2)  # past the first episodes' start-up
        phases["robot_alone"] = measure(observer, robot, phase_s)
        learner = ros_up_process(config, [*args[3:], "--only", "learner"], domain, work / f"{name}_learner.log")
        observer.wait(lambda: observer.actor.get("weights_version", 0) >= 1, 300, "the learner's first weights")
        phases["learner_running"] = measure(observer, robot, phase_s)
        learner.kill()
        learner.wait()
        phases["learner_killed"] = measure(observer, robot, phase_s)
    finally:
        if learner is not None and learner.poll() is None:
            interrupt_and_wait(learner, 60)
        interrupt_and_wait(robot, 60)
        log.close()
        observer.node.close()
    print(f"{name}: " + "; ".join(f"{phase} {v['robot_cpu_cores']:.2f} cores, {v['commands_per_s']:.1f} commands/s, "
                                  f"ends {v['episode_ends']}" for phase, v in phases.items()), flush=True)
    return phases


def main() -> None:
    from reward_helpers import save_tiny_open_clip

    from robo_reward.config.hardware import CONFIG_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/bench/robot_executor")
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--out", default="bench/results/robot_executor.json")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    demos, base = work / "demos", work / "base"
    if not demos.exists():
        cli(["demos", "collect", "--task", "lift", "--episodes", "3", "--noise", "0.3", "--cameras", "agentview",
             "--image-size", "32", "--out", str(demos), "--quiet"])
    if not base.exists():
        cli(["base", "train", "--dataset", str(demos), "--steps", "200", "--out", str(base), "--quiet"])
    clip = save_tiny_open_clip(work / "clip")
    config = yaml.safe_load((CONFIG_DIR / "sim_panda_lift.yaml").read_text())
    config["cameras"] = config["cameras"][:1]  # software rendering costs ~0.1 s a view here
    config_path = work / "sim_panda_lift_front.yaml"
    config_path.write_text(yaml.safe_dump(config))
    common = ["--reward", "clip", "--reward-model", str(clip), "--base", str(base), "--dataset", str(demos),
              "--record-dir", str(work / "recording"), "--max-episode-steps", "25", "--checkpoint-every", "20",
              "--device", "cpu", "--set", "learning_starts=20", "--set", "critic_warmup_updates=5",
              "--set", "batch_size=16", "--set", "utd_ratio=1"]
    variants = {name: run_variant(name, config_path, common, work, args.phase_s)
                for name in ("stack", "rclpy_default_events")}
    ratios = {phase: {"commands": round(variants["stack"][phase]["commands_per_s"]
                                        / max(variants["rclpy_default_events"][phase]["commands_per_s"], 1e-9), 2),
                      "robot_cpu": round(variants["stack"][phase]["robot_cpu_cores"]
                                         / max(variants["rclpy_default_events"][phase]["robot_cpu_cores"], 1e-9), 2)}
              for phase in variants["stack"]}
    record = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "control_hz": CONTROL_HZ, "phase_s": args.phase_s, "variants": variants,
              "stack_over_default_events": ratios}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
