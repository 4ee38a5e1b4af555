"""Residual RL (ResFiT recipe) vs SAC from scratch vs the base alone, success vs env steps.

  python bench/bench_residual.py --task lift --method all          # the docs/BENCHMARKS.md figure
  python bench/bench_residual.py --task lift --method residual --steps 30000 --set utd_ratio=1
  python bench/bench_residual.py --method residual --reward hop --reward-model DIR --dataset CAMERA_DEMOS \
      --base BASE --label "residual, hop reward (shaped)" --results reward_rl_lift   # learned-reward runs

Every method is evaluated on the same seeded episodes (robo_reward.rl.evaluation seeds) at the
same env-step marks. Stages: demos -> MLP BC base -> {base, residual, sac}. Writes
bench/results/residual_<task>.json (merged across methods) and residual_<task>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from robo_reward.cli import main as cli  # noqa: E402
from robo_reward.data.lerobot_io import read_env_spec  # noqa: E402
from robo_reward.rl.evaluation import evaluate  # noqa: E402
from robo_reward.rl.loop import LoopConfig, plot_success_curves  # noqa: E402
from robo_reward.rl.policies import load_policy  # noqa: E402
from robo_reward.rewards import RewardSpec  # noqa: E402
from robo_reward.rl.runs import create_residual_run, learner_config, make_sim_env  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"


def prepare(args, work: Path) -> tuple[Path, Path]:
    if args.dataset and args.base:
        return Path(args.dataset), Path(args.base)
    demos, base = work / "demos", work / "base"
    if not demos.exists():
        assert cli(["demos", "collect", "--task", args.task, "--robot", args.robot, "--episodes", str(args.demos),
                    "--noise", str(args.noise), "--seed", str(args.seed), "--out", str(demos)]) == 0
    if not base.exists():
        assert cli(["base", "train", "--dataset", str(demos), "--steps", str(args.bc_steps),
                    "--seed", str(args.seed), "--chunk", "1", "--out", str(base)]) == 0  # as measured
    return demos, base


def run_base(args, base: Path) -> list[dict]:
    policy, manifest = load_policy(base)
    env = make_sim_env(manifest["env"])
    result = evaluate(env, policy, args.eval_episodes, seed=args.seed)
    return [{"env_step": s, "success_rate": result.success_rate} for s in (0, args.steps)]


def run_residual(args, work: Path, demos: Path, base: Path) -> list[dict]:
    learner = learner_config(args.set, args.seed)
    loop = LoopConfig(total_env_steps=args.steps, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                      checkpoint_every=args.steps, seed=args.seed)
    reward = RewardSpec(args.reward, args.reward_model, args.shaping)
    run_dir = work / ("residual" if args.reward == "sparse" else f"residual_{args.reward}_{reward.shaping}")
    trainer = create_residual_run(run_dir, demos, base, learner, loop, reward=reward, overwrite=True)
    state = trainer.run(on_eval=lambda e: print(f"[{args.label or 'residual'}] step {e['env_step']}: "
                                                f"{e['success_rate']:.2f}", flush=True))
    return [{"env_step": e["env_step"], "success_rate": e["success_rate"]} for e in state.evals]


class FlatStateEnv:
    """SB3 needs a Box observation: concatenated state + object state, same as the residual learner."""

    def __new__(cls, env):
        import gymnasium as gym

        from robo_reward.envs.observations import flat_state

        class _Flat(gym.ObservationWrapper):
            def __init__(self, inner):
                super().__init__(inner)
                obs, _ = inner.reset(seed=0)
                dim = flat_state(obs).shape[0]
                self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

            def observation(self, observation):
                return flat_state(observation)

        return _Flat(env)


def run_sac(args, manifest_env: dict) -> list[dict]:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    env = FlatStateEnv(make_sim_env(manifest_env))
    eval_env = make_sim_env(manifest_env)
    curve: list[dict] = []

    class SACPolicy:
        def __init__(self, model):
            self.model = model

        def reset(self, seed=None):
            pass

        def act(self, obs):
            from robo_reward.envs.observations import flat_state

            return self.model.predict(flat_state(obs), deterministic=True)[0]

    class EvalCallback(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                r = evaluate(eval_env, SACPolicy(self.model), args.eval_episodes, seed=args.seed, progress=False)
                curve.append({"env_step": self.num_timesteps, "success_rate": r.success_rate})
                print(f"[sac] step {self.num_timesteps}: {r.success_rate:.2f}", flush=True)
            return True

    model = SAC("MlpPolicy", env, seed=args.seed, verbose=0, learning_starts=1000, device="cpu")
    r0 = evaluate(eval_env, SACPolicy(model), args.eval_episodes, seed=args.seed, progress=False)
    curve.append({"env_step": 0, "success_rate": r0.success_rate})
    model.learn(total_timesteps=args.steps, callback=EvalCallback(), progress_bar=False)
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="lift")
    p.add_argument("--robot", default="Panda")
    p.add_argument("--method", choices=["all", "base", "residual", "sac"], default="all")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--bc-steps", type=int, default=2000)
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--eval-every", type=int, default=2_500)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="residual learner override")
    p.add_argument("--work", default=None, help="work directory (default runs/bench/<task>)")
    p.add_argument("--dataset", help="use these demonstrations (with --base) instead of collecting")
    p.add_argument("--base", help="use this base policy directory (with --dataset) instead of training one")
    p.add_argument("--reward", default="sparse", help="residual: reward source (sparse, hop, ...)")
    p.add_argument("--reward-model", help="residual: reward-model directory")
    p.add_argument("--shaping", help="residual: shaping mode for a progress reward")
    p.add_argument("--label", help="curve name in the results (default: the method)")
    p.add_argument("--results", help="results file stem (default residual_<task>)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or f"runs/bench/{args.task}")
    demos, base = prepare(args, work)
    out = RESULTS / f"{args.results or 'residual_' + args.task}.json"
    methods = ["base", "residual", "sac"] if args.method == "all" else [args.method]
    for method in methods:
        start = time.time()
        if method == "base":
            curve = run_base(args, base)
        elif method == "residual":
            curve = run_residual(args, work, demos, base)
        else:
            curve = run_sac(args, read_env_spec(demos))
        # re-read just before writing: methods may run as parallel processes (one per core)
        results = json.loads(out.read_text()) if out.exists() else {"curves": {}, "runs": {}}
        key = args.label or method
        results["curves"][key] = curve
        results["runs"][key] = {
            "wall_s": round(time.time() - start, 1), "machine": machine(),
            "command": "python bench/bench_residual.py " + " ".join(os.sys.argv[1:]),
            "settings": {k: v for k, v in vars(args).items() if k not in ("work",)},
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
    labels = {"base": "BC base alone", "residual": "residual RL (ours)", "sac": "SAC from scratch (SB3)"}
    plot_success_curves(out.with_suffix(".png"), {labels.get(k, k): v for k, v in results["curves"].items()})
    print(json.dumps({k: v[-1] for k, v in results["curves"].items()}, indent=2))


if __name__ == "__main__":
    main()
