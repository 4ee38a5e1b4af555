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
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_transport import exclusive, t_interval  # noqa: E402
from robo_reward.cli import main as cli  # noqa: E402

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


# which models need which: `reward combine` pairs two trained models; rollouts are a dataset to collect
NEEDS = {"hop_progress_classifier_success": ("hop_demos_rollouts", "success_classifier_rollouts"),
         "hop_progress_classifier_success_hold5": ("hop_demos_rollouts", "success_classifier_rollouts")}
USES_ROLLOUTS = {"hop_demos_rollouts", "success_classifier_rollouts"}


def model_commands(work: Path, train: Path, rollouts: Path, args, seed: int) -> dict[str, list[str]]:
    """Each model's `robo-reward` command for training seed `seed` (its directory: the name, with
    `_seed<k>` for k > 0)."""
    sizes = ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--seed", str(seed)]
    pair = ["reward", "combine", "--progress", str(work / seeded("hop_demos_rollouts", seed)), "--success",
            str(work / seeded("success_classifier_rollouts", seed))]
    return {
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


def seeded(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}_seed{seed}"


def with_needs(names: list[str]) -> list[str]:
    """`names` and the models they are built from, in the order they can be made."""
    wanted = set(names) | {need for name in names for need in NEEDS.get(name, ())}
    return [name for name in MODELS if name in wanted]


MODELS = ["hop_one_demo", "hop_all_demos", "hop_demos_rollouts", "success_classifier", "success_classifier_rollouts",
          "hop_progress_classifier_success", "hop_progress_classifier_success_hold5"]


def episode_vocs(report: dict) -> dict[str, float]:
    """Per successful held-out episode (by index): its VOC, so that runs on the same episodes drawn
    another way can be compared episode by episode."""
    return {row["source"].rsplit("#", 1)[1]: row["voc"] for row in report["episodes"] if "voc" in row}


def over_seeds(per_seed: dict[str, dict]) -> dict:
    vocs = [r["voc_mean"] for r in per_seed.values() if r.get("voc_mean") is not None]
    accuracy = [r["success_accuracy"] for r in per_seed.values()]
    voc, voc_t95 = t_interval(vocs) if vocs else (None, None)
    acc, acc_t95 = t_interval(accuracy)
    return {"seeds": len(per_seed), "voc_mean": voc, "voc_t95": voc_t95, "success_accuracy": acc,
            "success_accuracy_t95": acc_t95}


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
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of every model")
    p.add_argument("--models", nargs="+", choices=MODELS, default=MODELS,
                   help="only these models (and those they are combined from)")
    p.add_argument("--work", default=None)
    p.add_argument("--compare", action="store_true",
                   help="no training: every render's record of --task side by side, paired by episode and seed "
                        "against `robosuite` -> reward_models_<task>_renders.json")
    args = p.parse_args()
    if args.compare:
        return compare_renders(args.task)
    torch.set_num_threads(args.threads)
    tag = args.render.replace(",", "_").replace("=", "-")
    work = Path(args.work or f"runs/bench/rewards/{args.task}_{tag}")
    train, heldout, rollouts = work / "train", work / "heldout", work / "rollouts"
    names = with_needs(args.models)
    collect(train, args.task, args.train_episodes, args.train_noise, 0, args.image_size, args.render)
    collect(heldout, args.task, args.heldout_episodes, args.heldout_noise, 500, args.image_size, args.render)
    if USES_ROLLOUTS & set(names):
        collect(rollouts, args.task, args.rollout_episodes, args.heldout_noise, 1000, args.image_size, args.render)
    # reward_models_<task>.json (no render tag): the record from before render settings, drawn as robosuite draws
    out = RESULTS / f"reward_models_{args.task}_render-{tag}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        commands = model_commands(work, train, rollouts, args, seed)
        for name in names:
            model_dir = work / seeded(name, seed)
            entry = json.loads(out.read_text()).get(name, {}) if out.exists() else {}
            # (a record from before training seeds holds seed 0's time at its top level)
            train_s = entry.get("per_seed", {}).get(str(seed), {}).get("train_s", entry.get("train_s") if seed == 0 else None)
            if not model_dir.exists():
                start = time.time()
                run([*commands[name], "--out", str(model_dir), "--quiet"])
                train_s = round(time.time() - start, 1)
            eval_dir = work / f"eval_{seeded(name, seed)}"
            run(["reward", "eval", "--model", str(model_dir), "--dataset", str(heldout), "--out", str(eval_dir),
                 "--quiet", "--overwrite"])
            report = json.loads((eval_dir / "reward_eval.json").read_text())
            s = report["summary"]
            # merged into the record as it is now, under a lock: runs of other seeds may write it meanwhile
            with exclusive(out.with_suffix(".lock")):
                results = json.loads(out.read_text()) if out.exists() else {}
                entry = results.setdefault(name, {})
                add_result(entry, seed, s, report, train_s, eval_dir, args)
                out.write_text(json.dumps(results, indent=2))
            print(f"{seeded(name, seed)}: VOC {s.get('voc_mean', float('nan')):.3f} "
                  f"(min {s.get('voc_min', float('nan')):.3f}), success accuracy {s['success']['accuracy']:.3f}, "
                  f"F1 {s['success']['f1']:.3f}", flush=True)


def add_result(entry: dict, seed: int, s: dict, report: dict, train_s, eval_dir: Path, args) -> None:
    """One training seed's evaluation into a model's record: per seed, over seeds, and the first
    seed's full report."""
    entry.setdefault("per_seed", {})[str(seed)] = {
        "voc_mean": s.get("voc_mean"), "success_accuracy": s["success"]["accuracy"], "train_s": train_s,
        "episode_voc": episode_vocs(report)}
    entry["over_seeds"] = over_seeds(entry["per_seed"])
    if seed == min(int(k) for k in entry["per_seed"]):  # the first seed's full report
        entry.update(summary=s, train_s=train_s, figure=str(eval_dir / "progress.png"))
    entry.update(command="python bench/bench_reward_models.py " + " ".join(sys.argv[1:]),
                 machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                         f"{torch.get_num_threads()} threads",
                 settings={k: v for k, v in vars(args).items() if k not in ("work", "compare", "models")})


def compare_renders(task: str) -> None:
    """Every model under every render recorded for `task`: VOC and success accuracy over training
    seeds, and each render's VOC minus robosuite's on the same episodes and seeds (the frames differ,
    the episodes do not: render settings never change the physics)."""
    records = {path.name.removeprefix(f"reward_models_{task}_render-").removesuffix(".json"): json.loads(path.read_text())
               for path in sorted(RESULTS.glob(f"reward_models_{task}_render-*.json"))}
    reference = records.get("robosuite", {})
    table = {}
    for render, record in records.items():
        for name, entry in record.items():
            per_seed = entry.get("per_seed", {})
            if not per_seed:
                continue
            row = {**over_seeds(per_seed), "per_seed": {k: {"voc_mean": v["voc_mean"], "success_accuracy": v["success_accuracy"]}
                                                        for k, v in per_seed.items()}}
            ref = reference.get(name, {}).get("per_seed", {})
            diffs = {seed: [v["episode_voc"][ep] - ref[seed]["episode_voc"][ep] for ep in v["episode_voc"]
                            if ep in ref[seed]["episode_voc"]]
                     for seed, v in per_seed.items() if seed in ref and render != "robosuite"}
            if diffs:
                pooled = np.concatenate([d for d in diffs.values()])
                mean, t95 = t_interval([float(np.mean(d)) for d in diffs.values()])
                row["voc_minus_robosuite"] = {"mean": mean, "t95_over_seeds": t95, "seeds": len(diffs),
                                              "episodes_lower": int(np.sum(pooled < 0)), "pairs": int(pooled.size)}
            table.setdefault(name, {})[render] = row
    out = RESULTS / f"reward_models_{task}_renders.json"
    out.write_text(json.dumps(table, indent=1))
    for name, renders in table.items():
        print(name)
        for render, row in renders.items():
            d = row.get("voc_minus_robosuite")
            vs = (f"   vs robosuite {d['mean']:+.3f} [{d['t95_over_seeds'][0]:+.3f}, {d['t95_over_seeds'][1]:+.3f}] "
                  f"({d['episodes_lower']}/{d['pairs']} episode-seeds lower)") if d else ""
            voc = "VOC   -  " if row["voc_mean"] is None else f"VOC {row['voc_mean']:.3f}"
            print(f"  {render:36s} {voc} (n={row['seeds']})  success accuracy {row['success_accuracy']:.3f}{vs}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
