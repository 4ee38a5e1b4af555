"""Reward quality on simulated episodes: VOC and success accuracy of the hop model and the success
classifier, judged against the simulator's own success check on held-out seeds.

  python bench/bench_reward_models.py --task lift      # -> bench/results/reward_models_lift_render-fast.json
  python bench/bench_reward_models.py --task lift --render robosuite   # frames drawn as robosuite draws them

Stages (each skipped when its output exists under --work): training demos (low noise, run past
success so the success state stays in view) -> held-out rollouts (high noise: successes, failures,
partial lifts) -> labeled training rollouts (same noise, other seeds: the failures a success
classifier needs as negatives) -> hop model (one-shot from one demo, from all demos, and from the
demos plus the successful rollouts) and success classifier (demos only, and demos + rollouts), and
the last hop model's progress paired with the last classifier's success call (`reward combine`, the
call as is and held for 5 frames) ->
`robo-reward reward eval` of each on the held-out set.
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

import torch

from robo_reward.cli import main as cli

RESULTS = Path(__file__).parent / "results"
CAMERAS = ["agentview", "robot0_eye_in_hand"]


def run(argv: list[str]) -> None:
    code = cli(argv)
    if code != 0:
        raise SystemExit(f"command failed ({code}): robo-reward {' '.join(argv)}")


def collect(out: Path, task: str, episodes: int, noise: float, seed: int, image_size: int, render: str) -> None:
    if not out.exists():
        run(["demos", "collect", "--task", task, "--episodes", str(episodes), "--noise", str(noise), "--seed",
             str(seed), "--keep-going", "--cameras", *CAMERAS, "--image-size", str(image_size), "--render", render,
             "--out", str(out), "--quiet"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="lift")
    p.add_argument("--train-episodes", type=int, default=10)
    p.add_argument("--heldout-episodes", type=int, default=24)
    p.add_argument("--rollout-episodes", type=int, default=16)
    p.add_argument("--train-noise", type=float, default=0.3)
    p.add_argument("--heldout-noise", type=float, default=1.2)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--hop-steps", type=int, default=1500)
    p.add_argument("--classifier-steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--render", default="fast", help="how camera frames are drawn (`demos collect --render`)")
    p.add_argument("--work", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tag = args.render.replace(",", "_").replace("=", "-")
    work = Path(args.work or f"runs/bench/rewards/{args.task}_{tag}")
    train, heldout, rollouts = work / "train", work / "heldout", work / "rollouts"
    collect(train, args.task, args.train_episodes, args.train_noise, 0, args.image_size, args.render)
    collect(heldout, args.task, args.heldout_episodes, args.heldout_noise, 500, args.image_size, args.render)
    collect(rollouts, args.task, args.rollout_episodes, args.heldout_noise, 1000, args.image_size, args.render)
    sizes = ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
    pair = ["reward", "combine", "--progress", str(work / "hop_demos_rollouts"), "--success",
            str(work / "success_classifier_rollouts")]
    models = {
        "hop_one_demo": ["reward", "train", "hop", "--dataset", str(train), "--episodes", "0",
                         "--steps", str(args.hop_steps), *sizes],
        "hop_all_demos": ["reward", "train", "hop", "--dataset", str(train), "--steps", str(args.hop_steps), *sizes],
        # the successful labeled rollouts as extra demonstrations: noisier motion, like the held-out set's
        "hop_demos_rollouts": ["reward", "train", "hop", "--dataset", str(train), str(rollouts), "--steps",
                               str(2 * args.hop_steps), *sizes],
        "success_classifier": ["reward", "train", "classifier", "--dataset", str(train), "--steps",
                               str(args.classifier_steps), *sizes],
        "success_classifier_rollouts": ["reward", "train", "classifier", "--dataset", str(train), str(rollouts),
                                        "--steps", str(args.classifier_steps), *sizes],
        # no training: the hop model's progress with the classifier's success call, as one reward model
        "hop_progress_classifier_success": pair,
        # the same with the success call held 5 frames (0.25 s at 20 Hz) before it counts
        "hop_progress_classifier_success_hold5": [*pair, "--success-hold", "5"],
    }
    # reward_models_<task>.json (no render tag): the record from before render settings, drawn as robosuite draws
    out = RESULTS / f"reward_models_{args.task}_render-{tag}.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name, argv in models.items():
        model_dir = work / name
        train_s = results.get(name, {}).get("train_s")
        if not model_dir.exists():
            start = time.time()
            run([*argv, "--out", str(model_dir), "--quiet"])
            train_s = round(time.time() - start, 1)
        run(["reward", "eval", "--model", str(model_dir), "--dataset", str(heldout), "--out",
             str(work / f"eval_{name}"), "--quiet", "--overwrite"])
        report = json.loads((work / f"eval_{name}" / "reward_eval.json").read_text())
        results[name] = {
            "summary": report["summary"], "train_s": train_s,
            "command": "python bench/bench_reward_models.py " + " ".join(os.sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads",
            "settings": {k: v for k, v in vars(args).items() if k != "work"},
            "figure": str(work / f"eval_{name}" / "progress.png"),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        s = report["summary"]
        print(f"{name}: VOC {s.get('voc_mean', float('nan')):.3f} (min {s.get('voc_min', float('nan')):.3f}), "
              f"success accuracy {s['success']['accuracy']:.3f}, F1 {s['success']['f1']:.3f}")


if __name__ == "__main__":
    main()
