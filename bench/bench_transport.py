"""`rl train` in one process vs two (env + actor in one, learner in the other), same run otherwise.

  python bench/bench_transport.py                      # Panda Lift state, UTD 1, 10k env steps, 3 arms
  python bench/bench_transport.py --steps 2000 --arms two-process in-process-1t   # a quick look

Arms, each a fresh `robo-reward rl train` process from the same demos and base: in-process with 1 and
with 2 torch threads (OMP_NUM_THREADS), and two-process with the learner on 1 or 2 torch threads (the
env process always uses one). Every arm holds the
same update-to-data ratio. From each run's metrics.json timing: env steps per second of training
(evaluation time excluded), the update time per env step and the acting time per env step. The
in-process 1-thread run gives the limit a perfect overlap could reach,
    (t_env + t_update) / max(t_env, t_update),
and the two-process speed-up is reported as a fraction of it. Writes bench/results/transport.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
ARMS = {  # name -> (extra rl train flags, OMP_NUM_THREADS)
    "in-process-1t": (["--in-process"], "1"),
    "in-process-2t": (["--in-process"], "2"),
    "two-process": (["--learner-threads", "1"], "1"),
    "two-process-2t": (["--learner-threads", "2"], "2"),  # the env process still uses one thread
}


def cli(args: list[str], threads: str | None = None) -> None:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = threads
    subprocess.run([sys.executable, "-m", "robo_reward.cli", *args], env=env, check=True)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    """Poll `predicate` (a running stack's state) until it holds; TimeoutError naming `what`."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


@contextmanager
def exclusive(lock_path: Path):
    """Held by one process at a time (bench drivers started side by side share data and records)."""
    import fcntl

    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def wilson(successes: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def t_interval(rates) -> tuple[float, list[float]]:
    """Mean over training seeds and its 95% Student-t interval (3 seeds: t = 4.30, not 1.96)."""
    from scipy.stats import t as t_dist

    rates = np.asarray(rates, dtype=float)
    if len(rates) < 2:
        return float(rates.mean()), [float("nan"), float("nan")]
    half = t_dist.ppf(0.975, len(rates) - 1) * rates.std(ddof=1) / np.sqrt(len(rates))
    return float(rates.mean()), [float(rates.mean() - half), float(rates.mean() + half)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/bench/transport")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(args.work)
    demos, base = work / "demos", work / "base"
    if not demos.exists():
        cli(["demos", "collect", "--task", "lift", "--episodes", "20", "--noise", "0.5", "--out", str(demos)])
    if not base.exists():
        cli(["base", "train", "--dataset", str(demos), "--chunk", "1", "--out", str(base)])  # as measured
    out_file = RESULTS / "transport.json"
    earlier = json.loads(out_file.read_text()) if out_file.is_file() else {}
    # arms measured earlier at the same settings stay (a later run may add one arm)
    results = earlier.get("arms", {}) if earlier.get("steps") == args.steps else {}
    for arm in args.arms:
        flags, threads = ARMS[arm]
        out = work / arm
        started = time.perf_counter()
        cli(["rl", "train", "--base", str(base), "--dataset", str(demos), "--steps", str(args.steps),
             "--set", "utd_ratio=1", "--set", "actor_lr=1e-5", "--set", "critic_lr=3e-4",
             "--eval-every", str(args.steps), "--eval-episodes", str(args.eval_episodes),
             "--checkpoint-every", str(args.steps), "--seed", str(args.seed), "--out", str(out), "--overwrite",
             "--quiet", *flags], threads)
        process_s = time.perf_counter() - started
        metrics = json.loads((out / "metrics.json").read_text())
        timing, final = metrics["timing"], metrics["evals"][-1]
        steps = final["env_step"]
        train_s = timing["wall_s"] - timing["eval_s"]
        wins = sum(final["successes"])
        results[arm] = {
            "env_steps": steps, "process_wall_s": process_s, "train_s": train_s, "eval_s": timing["eval_s"],
            "env_steps_per_s": steps / train_s, "update_ms_per_step": 1e3 * timing["update_s"] / steps,
            "other_ms_per_step": 1e3 * (train_s - timing["update_s"]) / steps,
            "final_success": final["success_rate"], "final_success_wilson95": wilson(wins, final["episodes"]),
            "eval_episodes": final["episodes"],
        }
        print(f"[{arm}] {json.dumps(results[arm])}", flush=True)
    summary = {}
    if "in-process-1t" in results:
        ref = results["in-process-1t"]
        t_env, t_update = ref["other_ms_per_step"], ref["update_ms_per_step"]
        limit = (t_env + t_update) / max(t_env, t_update)
        summary = {"t_env_ms": t_env, "t_update_ms": t_update, "overlap_limit": limit}
        for arm, r in results.items():
            if arm == "in-process-1t":
                continue
            speedup = r["env_steps_per_s"] / ref["env_steps_per_s"]
            summary[f"{arm}_speedup"] = speedup
            summary[f"{arm}_fraction_of_limit"] = speedup / limit
    record = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "steps": args.steps, "arms": results, "summary": summary,
              "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(record, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
