"""Training episodes a learned reward paid a success for that the simulator judged failed, replayed
and looked at: what the robot was doing when the reward called success.

A run's replay buffer holds every training transition in order, with the action that was executed
(after the joint limit guard); `metrics.json` holds each training episode's length, the simulator's
success and whether the reward called one. Each chosen episode is replayed from its training seed
with those actions in the simulator (no guard: they already passed it), checked state for state
against the buffer, while the run's reward model reads the frames as it did in training. Per
episode: the step of the call, the cube's height above the table then and at most, whether the
gripper held the cube (the Lift failure modes of bench_failure_modes.py); a figure of frames beside
predicted progress and the call. Paid episodes the simulator judged successful are replayed too, as
the contrast.

    MUJOCO_GL=egl .venv/bin/python bench/bench_paid_failures.py \\
        --run runs/bench/learning/lift_learned/learned_combined/seed1/run --episodes 12

Writes bench/results/paid_failures.json (keyed by run) and <run>/../paid_failures.png."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_failure_modes import lift_failure_mode, lift_step_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUCCESS_HEIGHT_M = 0.04  # robosuite Lift: success once the cube is this far above the table
STATE_TOLERANCE = 1e-4  # replayed vs stored flat state: the same physics gives the same float32 states


def training_episodes(run: Path, buffered: int) -> list[dict]:
    """The run's training episodes with where their transitions start in the online buffer (episodes
    are contiguous there, in the order they were played); those past the buffer's saved end are left out."""
    episodes, start = [], 0
    for record in json.loads((run / "metrics.json").read_text())["episodes"]:
        if start + record["length"] > buffered:
            break
        episodes.append({**record, "start": start})
        start += record["length"]
    return episodes


def replay(env, source, episode: dict, seed: int, buffer: dict[str, np.ndarray], camera: str):
    """(trace, per-step Lift state) of one training episode replayed from its executed actions."""
    from robo_reward.envs.observations import flat_state
    from robo_reward.rl.evaluation import RewardTrace

    first, n = episode["start"], episode["length"]
    obs, _ = env.reset(seed=seed)
    readings, success, frames, states = [source.reset(obs, env.unwrapped.task_text)], [False], [obs[camera]], []
    for i in range(n):
        drift = float(np.abs(flat_state(obs) - buffer["obs"][first + i]).max())
        if drift > STATE_TOLERANCE:
            raise SystemExit(f"episode {episode['episode']} step {i}: the replay left the recorded states "
                             f"(max difference {drift:.2e}): wrong seed or buffer offset")
        obs, _, _, _, info = env.step(buffer["action"][first + i])
        readings.append(source.read(obs, info))
        success.append(bool(info.get("success", False)))
        frames.append(obs[camera])
        states.append(lift_step_state(env))
    return RewardTrace(readings, success, frames), states


def summarise(episode: dict, seed: int, trace, states: list[dict]) -> dict:
    call = next((i for i, r in enumerate(trace.readings) if r.success), None)
    at_call = states[call - 1] if call else None
    return {"episode": episode["episode"], "seed": seed, "length": episode["length"],
            "simulator_success": any(trace.success), "reward_called_at_step": call,
            "replayed_call_matches_training": trace.called == bool(episode["reward_success"]),
            "mode": lift_failure_mode(states, any(trace.success)),
            "height_at_call": round(at_call["height"], 4) if at_call else None,
            "grasp_at_call": at_call["grasp"] if at_call else None,
            "max_height": round(max(s["height"] for s in states), 4),
            "progress_at_call": round(float(trace.readings[call].progress), 3) if call else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="an `rl train` run directory trained from a learned reward")
    p.add_argument("--episodes", type=int, default=12, help="paid failures to replay (the first ones)")
    p.add_argument("--contrast", type=int, default=4, help="paid successes to replay beside them")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "paid_failures.json"))
    args = p.parse_args()

    from robo_reward.envs.observations import IMAGE_PREFIX
    from robo_reward.rewards import RewardSpec, make_reward_source
    from robo_reward.rl.checkpoint import load_buffers
    from robo_reward.rl.evaluation import plot_reward_traces
    from robo_reward.rl.runs import make_sim_env

    run = Path(args.run)
    config = json.loads((run / "run_config.json").read_text())
    if config["env"].get("task") != "lift" or config["reward"].get("source") == "sparse":
        raise SystemExit(f"{run}: needs a Lift run trained from a learned reward")
    buffer = load_buffers(run / "checkpoints" / "latest")["online"]
    buffered = len(buffer["obs"])  # saved to the buffer's size
    episodes = training_episodes(run, buffered)
    paid = [e for e in episodes if e["reward_success"]]
    failures = [e for e in paid if not e["success"]][:args.episodes]
    chosen = failures + [e for e in paid if e["success"]][:args.contrast]
    env = make_sim_env(config["env"])
    source = make_reward_source(RewardSpec.from_json(config["reward"]), "cpu")
    camera = IMAGE_PREFIX + source.cameras[0]
    rows, traces, seeds = [], [], []
    for e in chosen:
        seed = config["loop"]["seed"] + e["episode"] - 1  # `rl train` plays episode k (from 0) on seed + k
        trace, states = replay(env, source, e, seed, buffer, camera)
        rows.append(summarise(e, seed, trace, states))
        traces.append(trace)
        seeds.append(seed)
        print(json.dumps(rows[-1]), flush=True)
    figure = run.parent / "paid_failures.png"
    shown = [*range(min(6, len(failures))), *range(len(failures), min(len(failures) + 2, len(chosen)))]  # 8 rows
    plot_reward_traces(figure, [traces[i] for i in shown], [seeds[i] for i in shown], config["env"]["task"])
    failed = [r for r in rows if not r["simulator_success"]]
    modes = {m: sum(r["mode"] == m for r in failed) for m in ("never reached", "reached, never grasped",
                                                            "grasped, not lifted")}
    result = {"training_episodes": len(episodes), "paid": len(paid),
              "paid_simulator_failed": sum(not e["success"] for e in paid), "replayed": rows,
              "failed_modes": modes, "figure": str(figure), "machine": platform.processor() or platform.machine(),
              "command": " ".join(["bench/bench_paid_failures.py", *sys.argv[1:]])}
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {}
    record[str(run)] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"{len(failed)} paid failures replayed: {modes}; figure {figure}")


if __name__ == "__main__":
    main()
