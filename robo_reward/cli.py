"""`robo-reward`: collect demos, train a base policy, fine-tune it with residual RL, evaluate; reward models.

User mistakes (bad names, missing or corrupt files, a policy emitting NaN) end with one clear
line on stderr and exit status 2; outputs appear only when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from robo_reward.cliargs import (OneLineParser, non_negative_float, non_negative_int, positive_float, positive_int,
                                 render_arg, video_size)
from robo_reward.envs.rendering import DEFAULT_RENDER, RENDER_KEY, RENDER_PRESETS
from robo_reward.envs.scenes import SCENE_KEY
from robo_reward.errors import ConfigError, RoboRewardError
from robo_reward.rl.learner_config import LEARNER_NAMES
from robo_reward.fileutil import write_json
from robo_reward.labeling.cli import add_label_parsers
from robo_reward.reward_cli import add_reward_parsers
from robo_reward.rewards.shaping import SHAPING_MODES
from robo_reward.rewards.sources import MODEL_SOURCES, REWARD_SOURCES, RewardSpec

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering (Mesa EGL on CPU machines)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched from a model hub at run time


# ---------------------------------------------------------------- helpers
def env_spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"task": args.task, "robot": args.robot}
    if args.horizon is not None:
        spec["horizon"] = args.horizon
    if args.cameras:
        spec["cameras"] = list(args.cameras)
        spec["image_size"] = [args.image_size, args.image_size]
        spec[RENDER_KEY] = args.render.to_dict()
    if getattr(args, "keep_going", False):
        spec["terminate_on_success"] = False
    return spec


# ---------------------------------------------------------------- commands
def cmd_demos_collect(args: argparse.Namespace) -> None:
    from robo_reward.data.collect import collect_episodes
    from robo_reward.data.lerobot_io import EpisodeRecorder
    from robo_reward.fileutil import staged_dir
    from robo_reward.rl.runs import make_policy_env, make_sim_env
    from sim.demonstrators import make_demonstrator

    spec = env_spec_from_args(args)
    env = (make_policy_env if args.through_limiter else make_sim_env)(spec)
    spec[SCENE_KEY] = env.unwrapped.scene
    demonstrator = make_demonstrator(env.unwrapped, noise=args.noise, seed=args.seed)
    with staged_dir(args.out, args.overwrite) as tmp:
        root = tmp / "dataset"
        with EpisodeRecorder(root, env.unwrapped.fps, env.observation_space, env.action_space.shape[0], spec,
                             robot_type=env.unwrapped.robot_name) as recorder:
            stats = collect_episodes(env, demonstrator, args.episodes, recorder, seed=args.seed,
                                     keep_failures=not args.successful_only, progress=not args.quiet)
        for item in root.iterdir():
            shutil.move(str(item), tmp / item.name)
        root.rmdir()
    print(f"recorded {stats.saved}/{stats.attempted} episodes to {args.out} "
          f"(scripted success {stats.success_rate:.0%} at noise {args.noise}"
          f"{', through the joint limit guard' if args.through_limiter else ''})")


def cmd_base_train(args: argparse.Namespace) -> None:
    from robo_reward.data.lerobot_io import load_demonstrations, read_env_spec, read_episode_seeds
    from robo_reward.fileutil import (
        check_output_dir,
        refuse_output_inside_inputs,
        staged_dir,
    )

    if args.members != 1 and args.type != "mlp":
        raise ConfigError(f"--members {args.members}: only an mlp base averages members (this is --type {args.type})")
    dataset = Path(args.dataset)
    refuse_output_inside_inputs(Path(args.out), [dataset])
    spec = read_env_spec(dataset)
    check_output_dir(Path(args.out), args.overwrite)
    if args.type == "mlp":
        from robo_reward.rl.bc import MLPBCConfig, demonstration_frames, train_mlp_bc

        demos = load_demonstrations(dataset)
        states, actions, lengths = demonstration_frames(demos)
        config = MLPBCConfig(**({"steps": args.steps} if args.steps else {}),
                             **({"chunk": args.chunk} if args.chunk else {}), seed=args.seed, members=args.members)
        policy, losses = train_mlp_bc(states, actions, config, device=args.device, progress=not args.quiet,
                                      episode_lengths=lengths)
        with staged_dir(args.out, args.overwrite) as tmp:
            policy.save(tmp, spec, read_episode_seeds(dataset))
            write_json(tmp / "train_log.json", {"loss": losses[:: max(1, len(losses) // 500)],
                                                "episodes": len(demos), "frames": len(states)})
        members = f" ({config.members} members)" if config.members > 1 else ""
        print(f"trained MLP BC base{members} on {len(demos)} episodes / {len(states)} frames "
              f"(final loss {losses[-1]:.4f}) -> {args.out}")
    else:
        from robo_reward.data.lerobot_io import open_dataset
        from robo_reward.rl.lerobot_policy import ACTTrainConfig, train_act

        open_dataset(dataset)  # fail fast with a clear message before lerobot-train starts
        config = ACTTrainConfig(**({"steps": args.steps} if args.steps else {}),
                                **({"chunk_size": args.chunk, "n_action_steps": args.chunk} if args.chunk else {}),
                                seed=args.seed)
        with staged_dir(args.out, args.overwrite) as tmp:
            train_act(dataset.resolve(), tmp, spec, config, device=args.device)
        print(f"trained LeRobot ACT base ({config.steps} steps) -> {args.out}")


def cmd_rl_train(args: argparse.Namespace) -> None:
    from robo_reward.device import pick_device
    from robo_reward.rl.learners import RESIDUAL_TD3
    from robo_reward.rl.loop import LoopConfig
    from robo_reward.rl.runs import (
        create_residual_run,
        learner_config,
        resume_residual_run,
    )

    out = Path(args.out)
    device = pick_device(args.device)
    if args.learner != RESIDUAL_TD3 and not args.in_process and not args.resume:
        raise ConfigError(f"--learner {args.learner} runs env and learner in one process: add --in-process "
                          "(only residual-td3 ships its actor to a second process)")
    if args.resume:
        trainer = resume_residual_run(out, args.steps, device, local_env=args.in_process)
        if trainer.learner.kind != RESIDUAL_TD3 and not args.in_process:
            raise ConfigError(f"{out} runs the {trainer.learner.kind} learner: resume it with --in-process")
        print(f"resuming {out} at env step {trainer.state.env_step}")
    else:
        loop_config = LoopConfig(
            total_env_steps=args.steps or 30_000, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
            checkpoint_every=args.checkpoint_every, seed=args.seed,
        )
        reward = RewardSpec(args.reward, args.reward_model, args.shaping)
        trainer = create_residual_run(out, Path(args.dataset), args.base,
                                      learner_config(args.set, args.seed, args.learner),
                                      loop_config, reward=reward, device=device, base_noise=args.base_noise,
                                      overwrite=args.overwrite, local_env=args.in_process)
    if not args.in_process:
        from robo_reward.runtime.actor_process import use_actor_process

        use_actor_process(trainer, args.learner_threads)
    elif args.learner_threads:
        import torch

        torch.set_num_threads(args.learner_threads)
    state = trainer.run(progress=not args.quiet)
    first, last = state.evals[0], state.evals[-1]
    label = "residual RL" if trainer.learner.kind == RESIDUAL_TD3 else trainer.learner.kind
    print(f"{label}: eval success {first['success_rate']:.0%} at step {first['env_step']} -> "
          f"{last['success_rate']:.0%} at step {last['env_step']} ({last['episodes']} episodes)")
    print(f"run directory {out}: plot {out / 'success_vs_steps.png'}, metrics {out / 'metrics.json'}")


def cmd_eval(args: argparse.Namespace) -> None:
    from robo_reward.fileutil import refuse_output_inside_inputs, staged_dir
    from robo_reward.device import pick_device
    from robo_reward.rewards import make_reward_source
    from robo_reward.rl.evaluation import (
        evaluate,
        evaluation_seeds,
        plot_reward_traces,
        reward_audit,
        seen_initial_states,
    )
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_policy_env, training_env_spec

    watcher = [Path(args.reward_model)] if args.reward_model else []
    refuse_output_inside_inputs(Path(args.out), [Path(args.policy), *watcher])
    if bool(args.reward) != bool(args.reward_model):
        raise ConfigError("--reward and --reward-model go together: the kind of reward model and its directory")
    compare = Path(args.compare) / "eval.json" if args.compare else None
    if compare is not None and not compare.is_file():
        raise RoboRewardError(f"--compare: {compare} does not exist (expected an earlier `robo-reward eval --out`)")
    policy, manifest = load_policy(args.policy, args.device)
    overrides = {"render_camera": args.camera} if args.videos else {}
    if args.placement_scale != 1.0:
        overrides["placement_scale"] = args.placement_scale
    spec, source = manifest["env"], None
    if args.reward_model:  # the model watches through its own cameras, drawn as its training frames were
        source = make_reward_source(RewardSpec(args.reward, args.reward_model), str(pick_device(args.device)))
        if not getattr(source, "cameras", ()):
            raise ConfigError(f"--reward-model {args.reward_model}: a {args.reward} model without cameras cannot watch")
        size = list(getattr(source, "image_size", None) or [])
        if spec.get("cameras") and size and list(spec.get("image_size", [])) != size:
            raise ConfigError(f"--reward-model {args.reward_model} watches {size[0]}x{size[1]} frames, the policy's "
                              f"cameras are {spec.get('image_size')}: it would change what the policy sees")
        spec = training_env_spec(spec, source)  # episodes go on past success for it to watch (evaluate)
    seen = seen_initial_states(manifest, evaluation_seeds(args.seed, args.episodes))
    if seen:
        print(f"warning: {len(seen)} of the {args.episodes} evaluation episodes start where {args.policy}'s "
              f"demonstrations started (seeds {seen[0]}..{seen[-1]}): their score is not one on unseen initial "
              f"states; pick --seed past them", file=sys.stderr)
    env = make_policy_env(spec, **overrides)
    with staged_dir(args.out, args.overwrite) as tmp:
        result = evaluate(env, policy, args.episodes, seed=args.seed, video_episodes=args.videos,
                          video_dir=tmp / "videos", progress=not args.quiet, reward_source=source)
        summary = {"policy": str(args.policy), "env": {**manifest["env"], **overrides}, **result.summary(),
                   "episodes_on_demo_seeds": None if seen is None else len(seen)}  # None: unknown
        summary["env"].pop("render_camera", None)
        summary["videos"] = [str(Path(args.out) / "videos" / Path(v).name) for v in result.videos]
        if source is not None:
            summary["reward"] = {"kind": args.reward, "model": str(args.reward_model), **reward_audit(result.traces),
                                 "per_episode": [{"seed": seed, "called": t.called, "success": any(t.success),
                                                  "length": length, "progress": [round(r.progress, 4) for r in t.readings]}
                                                 for seed, length, t in zip(result.seeds, result.lengths, result.traces)]}
            plot_reward_traces(tmp / "reward_trace.png", result.traces, result.seeds, spec.get("task", ""))
        write_json(tmp / "eval.json", summary)
    print(f"{args.policy}: success {result.success_rate:.1%} over {args.episodes} seeded episodes "
          f"(mean length {summary['mean_length']:.0f} steps)")
    if source is not None:
        audit = summary["reward"]
        print(f"  {args.reward} reward called success in {audit['called']} episode(s): {audit['called_on_failed']} "
              f"the simulator judges failed, {audit['missed_success']} success(es) never called; "
              f"plot {Path(args.out) / 'reward_trace.png'}")
    if compare is not None:
        other = json.loads(compare.read_text())
        print(f"  vs {other['policy']}: {other['success_rate']:.1%} over {other['episodes']} episodes")
    if summary["videos"]:
        print(f"  videos: {Path(args.out) / 'videos'}")
    plot = Path(args.policy) / "success_vs_steps.png"
    if plot.is_file():
        print(f"  training curve: {plot}")


# ---------------------------------------------------------------- parser
def add_env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="lift", help="lift | can")
    p.add_argument("--robot", default="Panda", help="Panda (lift, can) | GR1 (lift)")
    p.add_argument("--horizon", type=positive_int, default=None, help="episode time limit in control steps")
    p.add_argument("--cameras", nargs="*", default=[], help="camera names to record (e.g. agentview)")
    p.add_argument("--image-size", type=video_size, default=84)
    p.add_argument("--render", type=render_arg, default=DEFAULT_RENDER,
                   help=f"how camera frames are drawn: a preset {sorted(RENDER_PRESETS)} (default fast), "
                        "optionally with overrides, e.g. fast,shadows=true,mesh_faces=0")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="robo-reward", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True)

    def command(group_parser, name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = group_parser.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        add_common(p)
        return p

    demos = groups.add_parser("demos", help="scripted demonstrations").add_subparsers(dest="cmd", required=True)
    p = command(demos, "collect", cmd_demos_collect, "record scripted demos as a LeRobotDataset")
    add_env_args(p)
    p.add_argument("--episodes", type=positive_int, default=20)
    p.add_argument("--noise", type=non_negative_float, default=0.3, help="demonstrator imperfection (0 = clean)")
    p.add_argument("--successful-only", action="store_true", help="drop failed episodes")
    p.add_argument("--through-limiter", action="store_true",
                   help="drive the demonstrator through the joint limit guard every policy acts through "
                        "(as a teleoperated robot would) and record the commands it let through")
    p.add_argument("--keep-going", action="store_true",
                   help="run every episode to the time limit instead of ending on success "
                        "(reward-model data: the success state stays in view)")
    p.add_argument("--out", required=True)

    base = groups.add_parser("base", help="behaviour-cloned base policies").add_subparsers(dest="cmd", required=True)
    p = command(base, "train", cmd_base_train, "train a base policy on a LeRobotDataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--type", choices=["mlp", "act"], default="mlp")
    p.add_argument("--steps", type=positive_int, default=None, help="gradient steps (default: per type)")
    p.add_argument("--chunk", type=positive_int, default=None,
                   help="actions predicted per state (default: mlp 8, act 10); an mlp base executes their "
                        "temporal ensemble, act its chunk")
    p.add_argument("--members", type=positive_int, default=1,
                   help="mlp: average this many MLPs, each trained as the single base of BC seed "
                        "seed*members+k (default 1; a few dozen noisy demos give single bases that swing "
                        "with their seed)")
    p.add_argument("--out", required=True)

    rl = groups.add_parser("rl", help="residual off-policy RL").add_subparsers(dest="cmd", required=True)
    p = command(rl, "train", cmd_rl_train, "fine-tune a frozen base with a residual learner (ResFiT)")
    p.add_argument("--base", help="policy directory, or 'scripted'")
    p.add_argument("--base-noise", type=non_negative_float, default=0.3, help="noise of a scripted base")
    p.add_argument("--dataset", help="demonstrations (LeRobotDataset) for the 50/50 batches")
    p.add_argument("--reward", default="sparse", choices=REWARD_SOURCES,
                   help="reward source (default: sparse success from the simulator's check)")
    p.add_argument("--reward-model", help="reward-model directory for --reward other than sparse")
    p.add_argument("--shaping", choices=[*SHAPING_MODES, "none"],
                   help="how progress becomes reward (default: policy-invariant; none for success-classifier)")
    p.add_argument("--steps", type=positive_int, default=None, help="total env steps (default 30000; on --resume: the run's)")
    p.add_argument("--eval-every", type=positive_int, default=2_000)
    p.add_argument("--eval-episodes", type=positive_int, default=20)
    p.add_argument("--checkpoint-every", type=positive_int, default=2_000)
    p.add_argument("--learner", choices=LEARNER_NAMES, default=LEARNER_NAMES[0],
                   help="residual-td3: ResFiT's residual on the base; lerobot-sac: lerobot's SAC acting alone")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="learner hyperparameter")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--in-process", action="store_true",
                   help="env and learner in one process, one after the other: deterministic, bit-exact resume "
                        "(default: the env in a second process, so acting and learning share both cores)")
    p.add_argument("--learner-threads", type=positive_int, help="torch threads for the learner's updates (default: every core but the env process's "
                   "one; with --in-process: torch's, every core)")
    p.add_argument("--out", required=True)

    add_reward_parsers(groups, command)
    add_label_parsers(groups, command)
    for plugin in entry_points(group="robo_reward.cli"):  # e.g. `ros` from ros_nodes (needs no rclpy to parse)
        plugin.load()(groups, command)

    p = command(groups, "eval", cmd_eval, "success rate over N seeded episodes, with videos")
    p.add_argument("--policy", required=True, help="policy directory (base or RL run)")
    p.add_argument("--episodes", type=positive_int, default=50)
    p.add_argument("--videos", type=non_negative_int, default=2, help="record the first N episodes")
    p.add_argument("--camera", default="frontview", help="camera for videos")
    p.add_argument("--compare", help="another eval directory to print side by side")
    p.add_argument("--placement-scale", type=positive_float, default=1.0,
                   help="object placement ranges as a multiple of training's (1.5: 50%% wider)")
    p.add_argument("--reward", choices=MODEL_SOURCES, help="with --reward-model: the kind of reward model that watches")
    p.add_argument("--reward-model", help="a reward model that watches every episode through its own cameras "
                   "(it decides nothing): its success calls against the simulator's, reward_trace.png")
    p.add_argument("--out", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (one line, status 2) or --help (0)
        return int(exc.code or 0)
    if args.func is cmd_rl_train and not args.resume and not (args.base and args.dataset):
        print("robo-reward: error: rl train needs --base and --dataset (or --resume)", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except RoboRewardError as exc:
        print(f"robo-reward: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robo-reward: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
