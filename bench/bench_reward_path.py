"""The closed loop's learned reward on the robot path vs in-process, and what a reading costs in time.

  MUJOCO_GL=egl python bench/bench_reward_path.py                # -> bench/results/reward_path_cpu.json
  MUJOCO_GL=egl python bench/bench_reward_path.py --steps 300 --latency-seconds 20   # a quick look

1. Streams: `ros up` (lockstep, exploration off) of the sim Panda Lift with its two 64x64 cameras, the
   reward server running arm (a)'s reward (hop progress + classifier success, `reward combine`), the
   BC base acting, for --steps control steps; then the same seeded episodes in-process through the
   reward wrapper. Per frame: the reward server's reading against the wrapper's (progress, reward,
   success call); per episode: what the learner joins (RewardJoin) against the in-process episode
   (length, how it ended).
2. Latency: the same stack in real time (frames at 20 Hz, stamped when drawn) with the hop model and
   with the classifier alone: camera -> reward (receipt of the reading minus the frame's stamp) and
   the server's own share (sample complete -> reading published), p50 / p99.
Reward models: bench/bench_reward_models.py's (runs/bench/rewards/lift_fast, built there if missing);
the base: bench_learning.py's Lift base.
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
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_transport import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class Listener:
    """Transitions, reward readings (with receipt time) and episode outcomes of a running stack."""

    def __init__(self, domain: int, act_dim: int):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray, String

        from robo_reward.runtime.codecs import decode_transition
        from ros_nodes.common import LATCHED, RELIABLE, REWARD_TOPIC, read_named_values, to_sec
        from ros_nodes.runner import BackgroundNode

        self.node = BackgroundNode("bench_reward_path", domain)
        self.transitions, self.rewards, self.outcomes = [], {}, {}

        def on_reward(m) -> None:
            self.rewards[round(to_sec(m.header.stamp), 6)] = {**read_named_values(m), "received": time.time()}

        def on_episode(m) -> None:
            outcome = json.loads(m.data).get("outcome")
            if outcome:
                self.outcomes[outcome["episode"]] = outcome

        n = self.node.node
        n.create_subscription(JointState, REWARD_TOPIC, on_reward, RELIABLE)
        n.create_subscription(Float64MultiArray, "/robo_reward/transitions", lambda m: self.transitions.append(
            decode_transition(np.asarray(m.data), int(m.data[0]), act_dim)), RELIABLE)
        n.create_subscription(String, "/robo_reward/episode", on_episode, LATCHED)

    def wait(self, predicate, timeout_s: float, what: str) -> None:
        wait_until(predicate, timeout_s, what)


def run_stack(config: Path, args: list[str], log: Path, until, timeout_s: float, what: str) -> Listener:
    from ros_nodes.runner import interrupt_and_wait, ros_up_process

    domain = random.randint(10, 99)
    listener = Listener(domain, 7)
    proc = ros_up_process(config, ["--device", "cpu", "--only", "sim_robot", "actor", "safety_monitor",
                                   "reset_manager", "reward_server", *args], domain, log)
    try:
        listener.wait(lambda: until(listener), timeout_s, what)
    finally:
        interrupt_and_wait(proc, 60)
        listener.node.close()
    return listener


def replay_in_process(config: dict, episodes: dict[int, int], horizon: int, base: Path, model: Path) -> dict[int, list]:
    """The robot's seeded episodes (id: its number since the reset manager started, the seed of the sim
    robot's scene reset) through `rl train`'s actor loop and the reward wrapper."""
    import gymnasium as gym

    from robo_reward.config.hardware import parse_hardware_config
    from robo_reward.envs.limits import JointLimitGuard, JointLimits
    from robo_reward.envs.wrappers import RewardWrapper
    from robo_reward.rewards import RewardSpec, make_reward_source
    from robo_reward.rl.actor_loop import run_episode
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_sim_env
    from robo_reward.runtime.actor import RuntimeActor

    cfg = parse_hardware_config(config)
    home = config["home"]["positions"]

    class HomeAfterReset(gym.Wrapper):
        def reset(self, **kwargs):
            return self.env.reset(seed=kwargs["seed"], options={"arm_joints": home})

    spec = {"task": cfg.sim.task, "robot": cfg.sim.robot, "horizon": horizon, "cameras": [c.name for c in cfg.cameras],
            "image_size": [cfg.sim.image_size] * 2, "render": cfg.sim.render_settings().to_dict(),
            "terminate_on_success": False}
    env = RewardWrapper(HomeAfterReset(JointLimitGuard(make_sim_env(spec), JointLimits.from_hardware(cfg))),
                        make_reward_source(RewardSpec("progress-success", str(model)), "cpu"))
    policy, _ = load_policy(base, "cpu")
    actor = RuntimeActor(None, 7)
    out = {}
    for e, number in episodes.items():
        out[e] = []
        run_episode(env, policy, lambda obs, a: actor.choose(obs, a, explore=False), out[e].append, episode=e,
                    seed=number)
    return out


def compare(listener: Listener, here: dict[int, list]) -> dict:
    from robo_reward.rewards.shaping import RewardReading
    from robo_reward.runtime.learner import RewardJoin

    robot = {e: [t for t in listener.transitions if t.episode == e] for e in here}
    frame_diffs, success_disagree, frames, episodes, after_success = [], 0, 0, [], 0
    for e, ours in here.items():
        first_diff = None
        for step, (t_here, t_robot) in enumerate(zip(ours, robot[e])):
            reading = listener.rewards.get(round(t_robot.stamp, 6))
            if reading is None:
                continue
            frames += 1
            frame_diffs.append(max(abs(reading["progress"] - t_here.next_progress), abs(reading["reward"] - t_here.reward)))
            success_disagree += bool(reading["success"]) != t_here.success
            if first_diff is None and frame_diffs[-1] > 1e-4:
                first_diff = step
        join = RewardJoin(tolerance_s=0.02)  # the episode's readings, as the learner hears them
        span = (robot[e][0].obs_stamp - 1.0, robot[e][-1].stamp + 1.0)
        for stamp, r in sorted(listener.rewards.items()):
            if span[0] <= stamp <= span[1]:
                join.add_reading(stamp, RewardReading(r["progress"], bool(r["success"]), r["reward"]))
        for t in robot[e]:
            join.add_transition(t, 0.0)
        learned = join.ready(0.0)
        after_success += join.after_success
        episodes.append({"episode": e, "first_step_off_by_1e-4": first_diff, "in_process_length": len(ours),
                         "learned_length": len(learned),
                         "robot_steps": len(robot[e]), "same_end": bool(learned) and (
                             learned[-1].terminated, learned[-1].success) == (ours[-1].terminated, ours[-1].success)})
    diffs = np.asarray(frame_diffs)
    return {"frames_compared": frames, "max_abs_diff": float(diffs.max()) if frames else None,
            "frames_within_1e-4": int((diffs <= 1e-4).sum()), "success_call_disagreements": success_disagree,
            "episodes": episodes, "episodes_same_length_and_end": sum(
                ep["learned_length"] == ep["in_process_length"] and ep["same_end"] for ep in episodes),
            "steps_after_success_dropped": after_success}


def latency(config: Path, source: str, model: Path, seconds: float, base: Path, log: Path) -> dict:
    started = time.time()
    listener = run_stack(config, ["--base", str(base), "--no-explore", "--reward", source, "--reward-model", str(model),
                                  "--duration", str(seconds + 30)],
                         log, lambda li: time.time() - started > seconds + 20 and len(li.rewards) > 20, seconds + 120,
                         f"{seconds:.0f} s of {source} readings")
    scored = {stamp: r for stamp, r in listener.rewards.items() if r.get("ok") == 1.0}
    e2e = np.array([r["received"] - stamp for stamp, r in scored.items()]) * 1e3
    server = np.array([r["latency_s"] for r in scored.values()]) * 1e3
    return {"readings": len(scored), "readings_per_s": (len(scored) - 1) / (max(scored) - min(scored)),
            "camera_to_reward_ms": {"p50": float(np.percentile(e2e, 50)), "p99": float(np.percentile(e2e, 99))},
            "server_ms": {"p50": float(np.percentile(server, 50)), "p99": float(np.percentile(server, 99))}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="runs/bench/rewards/lift_fast")
    p.add_argument("--base", default="runs/bench/learning/lift/data/base")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--latency-seconds", type=float, default=60.0)
    p.add_argument("--work", default="runs/bench/reward_path")
    p.add_argument("--parts", nargs="+", choices=["streams", "latency"], default=["streams", "latency"],
                   help="what to measure (a part measured before is kept in the results file)")
    args = p.parse_args()
    out = RESULTS / "reward_path_cpu.json"
    record = json.loads(out.read_text()) if out.is_file() else {}
    models, base, work = ROOT / args.models, ROOT / args.base, ROOT / args.work
    work.mkdir(parents=True, exist_ok=True)
    combined = models / "hop_progress_classifier_success_hold5"
    if not combined.is_dir():
        subprocess.run([sys.executable, str(ROOT / "bench" / "bench_reward_models.py"), "--work", str(models)], check=True)
    if not base.is_dir():
        raise SystemExit(f"{base}: no base policy; build it with `bench/bench_learning.py run --plan lift --arms base`")
    config = yaml.safe_load((ROOT / "hardware_configs" / "sim_panda_lift.yaml").read_text())
    config["home"]["randomize"] = 0.0  # the in-process replay starts from the same home pose
    config["safety"]["stale_timeout_s"] = 10.0  # a stalled step under load is refused (fail-safe) and leaves a gap
    config_path = work / "sim_panda_lift_fixed_home.yaml"
    config_path.write_text(yaml.safe_dump(config))

    if "streams" in args.parts:
        record["streams"] = streams(args, config, config_path, base, combined, work)
    if "latency" in args.parts:
        record["latency"] = {name: latency(config_path, source, models / model, args.latency_seconds, base,
                                           work / f"{name}.log")
                             for name, (source, model) in {"hop model": ("hop", "hop_demos_rollouts"),
                                                           "success classifier": ("success-classifier",
                                                                                  "success_classifier_rollouts")}.items()}
        print(json.dumps(record["latency"], indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    record.update({"command": "python bench/bench_reward_path.py " + " ".join(sys.argv[1:]),
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
                   "models": str(args.models)})
    out.write_text(json.dumps(record, indent=1))


def streams(args, config: dict, config_path: Path, base: Path, combined: Path, work: Path) -> dict:
    started = time.perf_counter()
    listener = run_stack(config_path, ["--base", str(base), "--lockstep", "--no-explore", "--max-episode-steps",
                                       str(args.horizon), "--reward", "progress-success", "--reward-model", str(combined)],
                         work / "lockstep.log", lambda li: len(li.transitions) >= args.steps, args.steps + 600,
                         f"{args.steps} steps")
    robot_s = time.perf_counter() - started
    finished = {e: listener.outcomes[e]["number"] for e in sorted({t.episode for t in listener.transitions})
                if e in listener.outcomes}
    started = time.perf_counter()
    here = replay_in_process(config, finished, args.horizon, base, combined)
    result = {**compare(listener, here), "steps": len(listener.transitions), "robot_path_s": round(robot_s, 1),
              "in_process_s": round(time.perf_counter() - started, 1)}
    print(json.dumps({k: v for k, v in result.items() if k != "episodes"}, indent=1), flush=True)
    return result


if __name__ == "__main__":
    main()
