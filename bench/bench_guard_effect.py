"""What does the joint limit guard cost a policy, and does its critic see the guarded action? (issue 14:
a PickPlaceCan residual that fell from 91% to 75% on the report episodes between 40k and 80k env steps.)

    MUJOCO_GL=egl .venv/bin/python bench/bench_guard_effect.py POLICY [POLICY ...] --name can_guard_effect

Each policy runs the same tuning episodes (seeds 900,000+ by default: nothing is reported on them)
twice, on two cores: through the joint limit guard, as `eval` and training run it (`make_policy_env`),
and on the bare simulator (`make_sim_env`). Through the guard it also counts how much the guard
changed each command (the largest element change, `limit_change`) and, for a residual policy, what its
critic says the change cost: Q(s, commanded) - Q(s, executed), binned by the change. A learner that
stores the executed action (the default) never saw a command the guard always rewrites; one with
`learn_commanded_action` never saw the executed action, so there the gap reads the other way round.
-> bench/results/learning/probes/<name>.json
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_learning import policy_probe_args, policy_probe_record  # noqa: E402
from bench_transport import wilson  # noqa: E402

CHANGE_BINS = ((0.0, 0.02), (0.02, 0.2), (0.2, np.inf))  # the guard's largest change to a command element


class GuardWatch(gym.Wrapper):
    """Keeps every step's (state, commanded, executed) of a JointLimitGuard-wrapped env."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._obs = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        from robo_reward.envs.observations import flat_state

        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps.append((flat_state(self._obs), np.asarray(action, np.float32),
                           np.asarray(info["executed_action"], np.float32)))
        self._obs = next_obs
        return next_obs, reward, terminated, truncated, info


def guard_costs(learner, steps) -> dict:
    """Per change bin (the guard's `limit_change`: its largest change to an element): its share of the steps
    and, for a residual policy's critic, mean Q(cmd) - Q(exec)."""
    states, commanded, executed = (np.asarray(x) for x in zip(*steps))
    change = np.abs(executed - commanded).max(axis=1)
    gap = None if learner is None else learner.q_estimate(states, commanded) - learner.q_estimate(states, executed)
    bins = {}
    for lo, hi in CHANGE_BINS:
        inside = (change >= lo) & (change < hi)
        bins[f"[{lo}, {hi})"] = {"share": float(inside.mean()),
                                 "q_commanded_minus_executed": None if gap is None or not inside.any()
                                 else float(gap[inside].mean())}
    return bins


def run(job: tuple[str, str, int, int]) -> dict:
    """One policy, guarded or bare, over `episodes` tuning episodes (a process of its own, one thread)."""
    import torch

    from robo_reward.rl.evaluation import evaluate
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_policy_env, make_sim_env

    torch.set_num_threads(1)
    path, mode, episodes, seed = job
    policy, manifest = load_policy(path, "cpu")
    env = GuardWatch(make_policy_env(manifest["env"])) if mode == "guarded" else make_sim_env(manifest["env"])
    result = evaluate(env, policy, episodes, seed=seed, progress=False)
    wins = int(sum(result.successes))
    row = {"successes": wins, "wilson95": wilson(wins, episodes), "mean_length": float(np.mean(result.lengths)),
           "outcomes": "".join("1" if s else "0" for s in result.successes)}
    if mode == "guarded":
        row["guard"] = guard_costs(getattr(policy, "learner", None), env.steps)
    print(f"{path}: {mode} {wins}/{episodes}", flush=True)
    return row


def main() -> None:
    from robo_reward.rl.evaluation import EVAL_SEED_OFFSET

    p = policy_probe_args(__doc__)
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args()
    out = policy_probe_record(args, "bench_guard_effect")
    jobs = [(str(path), mode, args.episodes, args.seed) for path in args.policies for mode in ("guarded", "bare")]
    with ProcessPoolExecutor(args.processes) as pool:
        rows = list(pool.map(run, jobs))
    record = {"episodes": args.episodes, "first_seed": EVAL_SEED_OFFSET + args.seed, "policies": {}}
    for (path, mode, _, _), row in zip(jobs, rows):
        record["policies"].setdefault(path, {})[mode] = row
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
