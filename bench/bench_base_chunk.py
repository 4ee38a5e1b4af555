"""Does a base that predicts action chunks beat the Markov one? MLP BC bases at several chunk lengths
(`base train --chunk N`: their temporal ensemble executed) on a bench_learning plan's demonstrations, one
per BC seed, each scored on the same 100 tuning episodes (seeds 900,000+; nothing here touches the
report seeds). Writes bench/results/base_chunk_<plan>.json (one row per chunk and BC seed, kept across
invocations: a row already there is not re-run).

    MUJOCO_GL=egl .venv/bin/python bench/bench_base_chunk.py --plan can --chunks 1 8 --bc-seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from bench_learning import PLANS, TUNING_SEED, data_dir, prepare_data  # noqa: E402
from bench_transport import t_interval, wilson  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", choices=[name for name, plan in PLANS.items() if not plan.data_plan], default="lift")
    p.add_argument("--chunks", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--bc-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--work", default=str(ROOT / "runs" / "bench" / "learning"))
    args = p.parse_args()

    import torch

    from robo_reward.data.lerobot_io import load_demonstrations
    from robo_reward.rl.bc import MLPBCConfig, demonstration_frames, train_mlp_bc
    from robo_reward.rl.evaluation import evaluate
    from robo_reward.rl.policies import read_policy_manifest
    from robo_reward.rl.runs import make_policy_env

    torch.set_num_threads(1)
    plan = PLANS[args.plan]
    data = data_dir(plan, Path(args.work), args.plan)
    prepare_data(plan, data)
    demos = load_demonstrations(data / "demos")
    states, actions, lengths = demonstration_frames(demos)
    env = make_policy_env(dict(read_policy_manifest(data / "base")["env"]))
    out = ROOT / "bench" / "results" / f"base_chunk_{args.plan}.json"
    record = json.loads(out.read_text()) if out.is_file() else {"plan": args.plan, "demos": len(demos),
                                                                   "bc_steps": plan.bc_steps, "rows": []}
    for seed in args.bc_seeds:
        for chunk in args.chunks:
            if any(r["chunk"] == chunk and r["bc_seed"] == seed and r["episodes"] == args.episodes for r in record["rows"]):
                continue
            config = MLPBCConfig(steps=plan.bc_steps, chunk=chunk, seed=seed)
            policy, _ = train_mlp_bc(states, actions, config, "cpu", progress=False,
                                     episode_lengths=lengths)
            start = time.time()
            result = evaluate(env, policy, args.episodes, seed=TUNING_SEED, progress=False)
            wins = int(sum(result.successes))
            row = {"chunk": chunk, "bc_seed": seed, "episodes": args.episodes, "successes": wins,
                   "rate": wins / args.episodes, "wilson95": wilson(wins, args.episodes),
                   "eval_s": round(time.time() - start, 1)}
            record["rows"].append(row)
            out.write_text(json.dumps(record, indent=1))
            print(f"{args.plan} chunk {chunk} BC seed {seed}: {wins}/{args.episodes}", flush=True)
    by_chunk = {}
    for r in record["rows"]:
        by_chunk.setdefault(r["chunk"], []).append(r["rate"])
    record["mean_over_bc_seeds"] = {}
    for c, rates in sorted(by_chunk.items()):
        mean, interval = t_interval(rates)
        record["mean_over_bc_seeds"][str(c)] = {"seeds": len(rates), "mean": mean,
                                                "t95": interval if len(rates) > 1 else None}
    out.write_text(json.dumps(record, indent=1))
    for c, m in record["mean_over_bc_seeds"].items():
        print(f"chunk {c}: {m['mean']:.0%} over {m['seeds']} BC seeds")


if __name__ == "__main__":
    main()
