"""Does a policy succeed more with exploration noise than greedy? (issue 14: the training episodes of
a residual run succeed more often than its greedy evaluations at the same step.)

    MUJOCO_GL=egl .venv/bin/python bench/bench_eval_noise.py POLICY [POLICY ...] --name lift_eval_noise

Each policy runs the same tuning episodes (seeds 900,000+ by default: nothing is reported on them)
twice: greedy, and with the training's white exploration noise added every step (a residual policy
through its learner's `act`, clipped to its bound as in training; any other policy on its action,
clipped to [-1, 1]). -> bench/results/learning/probes/<name>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from robo_reward.rl.evaluation import EVAL_SEED_OFFSET, evaluate  # noqa: E402
from robo_reward.rl.exploration import ExplorationNoise  # noqa: E402
from robo_reward.rl.policies import load_policy  # noqa: E402
from robo_reward.rl.residual_policy import ResidualPolicy  # noqa: E402
from robo_reward.rl.runs import make_policy_env  # noqa: E402
from bench_learning import policy_probe_args, policy_probe_record  # noqa: E402


class NoisyAction:
    """A policy that is not a residual one, with white noise on its action (clipped to [-1, 1])."""

    def __init__(self, policy, noise: ExplorationNoise):
        self.policy, self.noise = policy, noise

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def act(self, obs) -> np.ndarray:
        return np.clip(self.policy.act(obs) + self.noise(), -1.0, 1.0).astype(np.float32)


def exploring(policy, act_dim: int, std: float, seed: int):
    """`policy` acting as in a training episode: white noise of `std` on every step (a residual policy
    through its learner's own exploration path, clipped to its bound)."""
    noise = ExplorationNoise(np.random.default_rng(seed), act_dim, std)
    if isinstance(policy, ResidualPolicy):
        return ResidualPolicy(policy.base, policy.learner, noise)
    return NoisyAction(policy, noise)


def main() -> None:
    p = policy_probe_args(__doc__)
    p.add_argument("--std", type=float, default=0.05, help="ResFiT's exploration noise")
    args = p.parse_args()
    out = policy_probe_record(args, "bench_eval_noise")
    record = {"episodes": args.episodes, "first_seed": EVAL_SEED_OFFSET + args.seed, "std": args.std, "policies": {}}
    for path in args.policies:
        policy, manifest = load_policy(path, "cpu")
        env = make_policy_env(manifest["env"])
        row = {}
        for mode in ("greedy", "noisy"):
            acting = policy if mode == "greedy" else exploring(policy, env.action_space.shape[0], args.std, seed=0)
            result = evaluate(env, acting, args.episodes, seed=args.seed, progress=False)
            row[mode] = {"successes": int(sum(result.successes)), "mean_length": float(np.mean(result.lengths))}
            print(f"{path}: {mode} {row[mode]['successes']}/{args.episodes}", flush=True)
        record["policies"][str(path)] = row
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
