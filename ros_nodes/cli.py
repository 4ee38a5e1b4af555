"""`robo-reward ros ...` (plugged into the robo-reward command through the `robo_reward.cli` entry
point, so the library itself never imports rclpy): check a hardware config, or bring up a node set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robo_reward.cliargs import positive_float, positive_int
from robo_reward.errors import ConfigError


def cmd_ros_check(args: argparse.Namespace) -> None:
    from robo_reward.config.hardware import load_hardware_config

    cfg = load_hardware_config(args.config)
    print(f"{cfg.name}: OK ({cfg.kind}, {cfg.num_joints} joints, {cfg.control_rate_hz:g} Hz, "
          f"{cfg.command.interface} x{cfg.command.action_dim}, cameras {[c.name for c in cfg.cameras]})")


def options_from(args: argparse.Namespace):
    from ros_nodes.graph import StackOptions, join_settings

    base = args.base or (str(Path(args.policy) / "base") if args.policy else "")
    return StackOptions(reward=args.reward, reward_model=args.reward_model or "", task=args.task or "",
                        base_policy=base, dataset=args.dataset or "", run_dir=args.run_dir,
                        record_dir=args.record_dir, mcap=args.mcap or "", learner_set=join_settings(args.set),
                        max_episode_steps=args.max_episode_steps or 0, checkpoint_every=args.checkpoint_every,
                        seed=args.seed, device=args.device, reward_max_batch=args.reward_max_batch,
                        explore=not args.no_explore, lockstep=args.lockstep, residual_run=args.policy or "")


def cmd_ros_up(args: argparse.Namespace) -> None:
    from ros_nodes.graph import node_set

    try:
        specs = node_set(args.profile, args.config, options_from(args))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in specs})
        if unknown:
            raise ConfigError(f"--only {unknown}: not in the {args.profile} node set {[s.name for s in specs]}")
        specs = [s for s in specs if s.name in args.only]
    if args.print_nodes:
        print(json.dumps([{"name": s.name, "executable": s.executable, "parameters": s.parameters}
                          for s in specs], indent=2))
        return
    from ros_nodes.runner import exit_now, run_stack

    exit_now(run_stack(specs, args.duration))


def add_ros_parsers(groups, command) -> None:
    from ros_nodes.graph import PROFILES

    ros = groups.add_parser("ros", help="ROS 2 runtime").add_subparsers(dest="cmd", required=True)
    p = command(ros, "check", cmd_ros_check, "validate a hardware config (file, field and problem on error)")
    p.add_argument("config", help="hardware config YAML, or a shipped name (e.g. franka_panda)")
    p = command(ros, "up", cmd_ros_up, "run a node set in one process (as `ros2 launch robo_reward ...` would)")
    p.add_argument("config", help="hardware config YAML, or a shipped name (e.g. sim_panda_lift)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="sim_rehearsal")
    p.add_argument("--reward", default="sparse", help="sparse, or the reward source of --reward-model")
    p.add_argument("--reward-model", help="reward-model directory for the reward server")
    p.add_argument("--task", help="instruction for the reward model (default: a sim robot's task's)")
    p.add_argument("--base", help="base policy directory for the actor and a new learner run")
    p.add_argument("--dataset", help="demonstrations for a new learner run")
    p.add_argument("--run-dir", default="runs/ros/learner", help="learner run (resumed when it exists)")
    p.add_argument("--record-dir", default="runs/ros/recording", help="LeRobotDataset the recorder writes")
    p.add_argument("--mcap", help="also record every topic into this MCAP file")
    p.add_argument("--max-episode-steps", type=positive_int,
                   help="episode time limit in commands (default: a sim robot's task's, as in rl train; else 100)")
    p.add_argument("--checkpoint-every", type=positive_int, default=500, help="learner checkpoint period (transitions)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="learner hyperparameter")
    p.add_argument("--reward-max-batch", type=positive_int, default=16,
                   help="frames the reward server scores at once (1: lowest latency; more: throughput)")
    p.add_argument("--policy", help="a residual RL run directory (rl train --out): the actor runs its base and "
                                    "checkpointed residual (with --no-explore: evaluation on the robot path)")
    p.add_argument("--no-explore", action="store_true", help="the actor adds no exploration noise (evaluation)")
    p.add_argument("--lockstep", action="store_true",
                   help="sim robot: physics advances only on commands, so episodes step exactly as in rl train")
    p.add_argument("--only", nargs="+", metavar="NODE", help="run only these nodes of the set")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--print-nodes", action="store_true", help="print the node set and parameters, run nothing")
