"""The same commands on two Python stacks (e.g. 3.11 + lerobot 0.4.4 vs 3.12 + lerobot 0.6.1), this
checkout's code on both: what a stack upgrade moves.

  python bench/bench_stack.py --stack new=.venv/bin/python --stack old=/path/to/old/venv/bin/python
  python bench/bench_stack.py --seeds 0 --rl-steps 1000 --eval-episodes 20     # a quick look

Per stack, one command at a time (both cores to each, as a user runs them), timed:
  demos collect   Panda Lift, 20 episodes, noise 0.5, agentview camera 64 px (lerobot's dataset and
                  video writer); the same without cameras (the state demos everything below uses)
  base train mlp  the BC base (default steps)
  base train act  lerobot-train ACT on the camera demos, --act-steps steps
  eval base       the BC base on --eval-episodes episodes (state only: a policy evaluates in the
                  env its demos were recorded in, and rendering would cost more than the policy)
Then per stack and training seed a short residual run (`rl train --in-process`, UTD 1, make demo's
learning rates) and its evaluation on --eval-episodes episodes on seeds 2,000,000+ (nothing was tuned
on them), two runs at a time with one thread each. Jobs already done in --work are not re-run.
Writes bench/results/stack_ab.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


from bench_transport import t_interval, wilson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
EVAL_SEED = 2_000_000
RL_SET = ["--set", "utd_ratio=1", "--set", "actor_lr=1e-5", "--set", "critic_lr=3e-4"]
VERSIONS = ("import sys, torch, lerobot, importlib.metadata as m; print(sys.version.split()[0], torch.__version__, "
            "m.version('lerobot'))")


def run(python: str, args: list[str], log: Path, threads: str | None = None) -> float:
    """`robo-reward ARGS` under `python` with this checkout's code; returns its wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = threads
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([python, "-m", "robo_reward.cli", *args, "--quiet"], env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{python} robo-reward {' '.join(args)} failed (exit {proc.returncode}); log: {log}")
    return time.perf_counter() - started


def job(work: Path, name: str, python: str, args: list[str], threads: str | None = None) -> dict:
    """Run once: the result (wall time, the eval line) is kept in work/NAME.json and reused."""
    done = work / f"{name}.json"
    if done.is_file():
        return json.loads(done.read_text())
    log = work / f"{name}.log"
    wall = run(python, args, log, threads)
    found = re.search(r"success ([\d.]+)% over (\d+) seeded episodes", log.read_text())
    result = {"wall_s": wall}
    if found:
        n = int(found.group(2))
        result.update(successes=round(float(found.group(1)) * n / 100), episodes=n)
    done.write_text(json.dumps(result))
    print(f"{work.name}/{name}: {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", action="append", metavar="NAME=PYTHON",
                        help="an interpreter with the project's dependencies (default: new=.venv/bin/python)")
    parser.add_argument("--work", default="runs/bench/stack")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rl-steps", type=int, default=5000)
    parser.add_argument("--act-steps", type=int, default=200)
    parser.add_argument("--eval-episodes", type=int, default=100)
    args = parser.parse_args()
    stacks = dict(s.split("=", 1) for s in (args.stack or [f"new={ROOT / '.venv/bin/python'}"]))
    work = Path(args.work)
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "command": " ".join(sys.argv),
                     "rl_steps": args.rl_steps, "act_steps": args.act_steps, "eval_episodes": args.eval_episodes,
                     "eval_seeds": f"{EVAL_SEED + 1_000_000}+", "stacks": {}}
    began = time.perf_counter()
    for name, python in stacks.items():
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        versions = subprocess.run([python, "-c", VERSIONS], capture_output=True, text=True, check=True).stdout.split()
        camera_demos, demos = d / "demos", d / "demos_state"
        timed = {
            "demos_collect": job(d, "demos_collect", python, [
                "demos", "collect", "--task", "lift", "--episodes", "20", "--noise", "0.5", "--cameras", "agentview",
                "--image-size", "64", "--out", str(camera_demos), "--overwrite"]),
            "demos_collect_state": job(d, "demos_collect_state", python, [
                "demos", "collect", "--task", "lift", "--episodes", "20", "--noise", "0.5", "--out", str(demos),
                "--overwrite"]),
            "base_train_mlp": job(d, "base_train_mlp", python, ["base", "train", "--dataset", str(demos),
                                                                "--chunk", "1", "--out", str(d / "base"), "--overwrite"]),
            "base_train_act": job(d, "base_train_act", python, [
                "base", "train", "--type", "act", "--steps", str(args.act_steps), "--dataset", str(camera_demos),
                "--out", str(d / "act"), "--overwrite"]),
            "eval_base": job(d, "eval_base", python, [
                "eval", "--policy", str(d / "base"), "--episodes", str(args.eval_episodes), "--seed", str(EVAL_SEED),
                "--out", str(d / "eval_base"), "--overwrite"]),
        }
        results["stacks"][name] = {"python": python, "python_version": versions[0], "torch": versions[1],
                                   "lerobot": versions[2], "timed": timed}

    def residual(name: str, seed: int) -> dict:
        python, d = stacks[name], work / name
        run_dir = d / f"rl_seed{seed}"
        train = job(d, f"rl_seed{seed}", python, [
            "rl", "train", "--in-process", "--base", str(d / "base"), "--dataset", str(d / "demos_state"),
            "--steps", str(args.rl_steps), *RL_SET, "--eval-every", str(args.rl_steps), "--eval-episodes", "10",
            "--checkpoint-every", str(args.rl_steps), "--seed", str(seed), "--out", str(run_dir), "--overwrite"], "1")
        evaluated = job(d, f"eval_rl_seed{seed}", python, [
            "eval", "--policy", str(run_dir), "--episodes", str(args.eval_episodes), "--seed", str(EVAL_SEED),
            "--out", str(d / f"eval_rl_seed{seed}"), "--overwrite"], "1")
        return {"seed": seed, "train_wall_s": train["wall_s"], **evaluated}

    with ThreadPoolExecutor(2) as pool:
        futures = {(name, seed): pool.submit(residual, name, seed) for seed in args.seeds for name in stacks}
        for (name, seed), future in futures.items():
            results["stacks"][name].setdefault("residual", []).append(future.result())
    for stack in results["stacks"].values():
        base = stack["timed"]["eval_base"]
        stack["base_success"] = {"rate": base["successes"] / base["episodes"],
                                 "wilson95": wilson(base["successes"], base["episodes"])}
        rates = [r["successes"] / r["episodes"] for r in stack["residual"]]
        mean, interval = t_interval(rates)
        stack["residual_success"] = {"per_seed": rates, "mean": mean, "ci95_over_seeds": interval}
    results["wall_s"] = time.perf_counter() - began
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stack_ab.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({n: {"timed_s": {k: round(v["wall_s"], 1) for k, v in s["timed"].items()},
                          "base": s["base_success"]["rate"], "residual": s["residual_success"]["mean"]}
                      for n, s in results["stacks"].items()}, indent=2))


if __name__ == "__main__":
    main()
