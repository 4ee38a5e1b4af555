"""`robo-reward reward ...`: train, score and evaluate reward models (wired into robo_reward.cli)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from robo_reward.cliargs import non_negative_int, open_fraction, positive_int
from robo_reward.envs.rendering import common_render, render_mismatch
from robo_reward.errors import RoboRewardError
from robo_reward.fileutil import write_json


def _episodes_arg(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise RoboRewardError(f"--episodes expects comma-separated episode indices, got {text!r}") from None


def episode_seeds(episodes) -> list[int]:
    """The reset seeds of these episodes (LabeledEpisode or a labeling EpisodeRef) where their dataset kept
    them: the initial states a model trained on them has seen."""
    return [e.seed for e in episodes if e.seed is not None]


def cmd_reward_train(args: argparse.Namespace) -> None:
    from robo_reward.data.episodes import load_episodes
    from robo_reward.data.lerobot_io import load_demonstrations
    from robo_reward.fileutil import check_output_dir, refuse_output_inside_inputs

    refuse_output_inside_inputs(Path(args.out), [Path(d) for d in args.dataset])
    check_output_dir(Path(args.out), args.overwrite)
    if args.kind in PREFERENCE_KINDS and args.preferences:
        return train_from_preferences(args)
    if not args.dataset:
        raise RoboRewardError(f"reward train {args.kind} needs --dataset"
                              + (" or --preferences DB" if args.kind in PREFERENCE_KINDS else ""))
    indices = _episodes_arg(args.episodes)
    if indices is not None and len(args.dataset) > 1:
        raise RoboRewardError("--episodes selects episodes of one dataset; give a single --dataset with it")
    datasets = ", ".join(args.dataset)
    labeled = [e for root in args.dataset for e in load_episodes(root, args.cameras or None, indices)]
    try:  # the model records how its frames were drawn: the env that it scores draws them the same way
        render = common_render(e.render for e in labeled)
    except ValueError as exc:
        raise RoboRewardError(f"{datasets}: {exc}; train a reward model on frames drawn one way") from None
    if args.kind == "hop":
        from robo_reward.rewards.process import (
            HopNetConfig,
            HopTrainConfig,
            gripper_keyframes,
            save_hop_model,
            train_hop_model,
        )

        demos = [e.until_success() for e in labeled if e.succeeded]
        if not demos:
            raise RoboRewardError(f"{datasets}: no successful episode among {len(labeled)} to adapt from")
        actions = {f"{root}#{d.episode_index}": d.actions for root in args.dataset
                   for d in load_demonstrations(root)}
        keyframes = [gripper_keyframes(actions[e.source]) for e in demos]
        if args.preferences:  # stage boundaries people marked replace the gripper-flip heuristic
            keyframes = labeled_keyframes(args, demos, keyframes)
        cameras = tuple(demos[0].episode.cameras)
        net_cfg = HopNetConfig(cameras=cameras, image_size=args.image_size, render=render)
        train_cfg = HopTrainConfig(**({"steps": args.steps} if args.steps else {}), seed=args.seed, device=args.device,
                                   **({"batch_size": args.batch_size} if args.batch_size else {}))
        net, log = train_hop_model([d.episode for d in demos], net_cfg, train_cfg, keyframes, not args.quiet)
        goal = {c: demos[0].episode.frames[c][-1] for c in cameras}
        log.update(demos=[d.source for d in demos], keyframes=keyframes)
        save_hop_model(args.out, net, goal, train_log=log, overwrite=args.overwrite, demo_seeds=episode_seeds(demos))
        print(f"hop model adapted from {len(demos)} successful episode(s), cameras {list(cameras)} -> {args.out}")
    elif args.kind == "classifier":
        from robo_reward.rewards.classifier import (
            ClassifierTrainConfig,
            SuccessNetConfig,
            save_success_classifier,
            train_success_classifier,
        )

        cameras = tuple(labeled[0].episode.cameras)
        net_cfg = SuccessNetConfig(cameras=cameras, image_size=args.image_size, render=render)
        train_cfg = ClassifierTrainConfig(**({"steps": args.steps} if args.steps else {}), seed=args.seed,
                                          device=args.device,
                                          **({"batch_size": args.batch_size} if args.batch_size else {}))
        net, log = train_success_classifier(labeled, net_cfg, train_cfg, not args.quiet)
        save_success_classifier(args.out, net, log, overwrite=args.overwrite, demo_seeds=episode_seeds(labeled))
        print(f"success classifier trained on {log['frames']} frames ({log['positive_frames']} success) -> {args.out}")
    elif args.kind == "rapl":
        from robo_reward.rewards.rapl import (
            RaplConfig,
            RaplTrainConfig,
            save_rapl,
            train_rapl,
        )

        experts = [e for e in labeled if e.succeeded][: args.experts]
        if not experts:
            raise RoboRewardError(f"{datasets}: no successful episode to use as the expert video")
        preferences = preference_pairs(labeled)
        cfg = RaplConfig(cameras=tuple(experts[0].episode.cameras), image_size=args.image_size, render=render)
        train_cfg = RaplTrainConfig(**({"epochs": args.steps} if args.steps else {}), seed=args.seed,
                                    device=args.device)
        model, log = train_rapl([e.episode for e in experts], preferences, cfg, train_cfg, progress=not args.quiet)
        save_rapl(args.out, model, {**log, "experts": [e.source for e in experts], "pairs": len(preferences)},
                  overwrite=args.overwrite, demo_seeds=episode_seeds(labeled))
        print(f"RAPL encoder fine-tuned on {len(preferences)} preference pairs against {len(experts)} expert "
              f"video(s) (final preference accuracy {log['accuracy'][-1]:.0%}) -> {args.out}")
    else:  # clip: calibrate the progress scale on first/last frames of successful episodes
        from robo_reward.rewards.clip import ClipReward, ClipRewardConfig
        from robo_reward.rewards.registry import save_clip_config

        good = [e for e in labeled if e.succeeded]
        if not good:
            raise RoboRewardError(f"{datasets}: no successful episode to calibrate CLIP on")
        camera = good[0].episode.cameras[0]
        model = ClipReward(ClipRewardConfig(model=args.clip_model, pretrained=args.clip_pretrained, camera=camera,
                                            device=args.device))
        model.calibrate(np.stack([e.episode.frames[camera][0] for e in good]),
                        np.stack([e.episode.frames[camera][-1] for e in good]), good[0].episode.task)
        save_clip_config(args.out, model.config, overwrite=args.overwrite, demo_seeds=episode_seeds(good))
        print(f"CLIP reward calibrated on {len(good)} episodes (progress 0 at R={model.config.progress_low:.4f}, "
              f"1 at R={model.config.progress_high:.4f}) -> {args.out}")


PREFERENCE_KINDS = ("rapl", "bradley-terry")


def _label_store(args: argparse.Namespace):
    from robo_reward.labeling.store import LabelStore

    if not Path(args.preferences).is_file():
        raise RoboRewardError(f"--preferences {args.preferences}: label database not found")
    return LabelStore(args.preferences)


def labeled_keyframes(args: argparse.Namespace, demos, default: list[list[int]]) -> list[list[int]]:
    """Keyframe labels (seconds) of these demos, matched by content hash, as frame indices."""
    from robo_reward.labeling.sources import scan_lerobot
    from robo_reward.labeling.training import keyframe_labels

    marks = keyframe_labels(_label_store(args))
    keys = {}
    for root in args.dataset:
        fps = json.loads((Path(root) / "meta" / "info.json").read_text())["fps"]
        keys.update({f"{root}#{e.index}": (e.key, fps) for e in scan_lerobot(Path(root), "").episodes})
    out, used = [], 0
    for demo, fallback in zip(demos, default):
        key, fps = keys[demo.source]
        if key in marks:
            used += 1
            out.append(sorted({min(round(t * fps), demo.episode.length - 1) for t in marks[key]}))
        else:
            out.append(fallback)
    print(f"keyframes from {args.preferences} for {used} of {len(demos)} demos (others: gripper flips)")
    return out


def train_from_preferences(args: argparse.Namespace) -> None:
    """RAPL or Bradley-Terry from a label database; reports accuracy on held-out preferences."""
    import torch

    from robo_reward.labeling.cli import default_cache
    from robo_reward.labeling.training import TIE, load_frames, locate, preferences_from
    from robo_reward.rewards.evaluation import episode_score

    store = _label_store(args)
    prefs = preferences_from(store)
    train, test = prefs.split(args.heldout, args.seed)
    refs = locate(store, prefs.keys(), args.dataset, default_cache())
    cameras = args.cameras or [v.camera for v in next(iter(refs.values())).views]
    episodes = load_frames(refs.values(), cameras, not args.quiet)
    trained_seeds = episode_seeds(refs[k] for k in train.keys())  # held-out episodes are only scored
    if args.kind == "bradley-terry":
        from robo_reward.rewards.preference import (
            BradleyTerryReward,
            BTTrainConfig,
            FrameRewardNetConfig,
            save_bradley_terry,
            train_bradley_terry,
        )

        if not train.pairs:
            raise RoboRewardError(f"{args.preferences}: no pairwise preferences to train a Bradley-Terry reward on")
        net_cfg = FrameRewardNetConfig(cameras=tuple(cameras), image_size=args.image_size)
        train_cfg = BTTrainConfig(**({"steps": args.steps} if args.steps else {}), seed=args.seed, device=args.device)
        net, log = train_bradley_terry([(episodes[a], episodes[b], p) for a, b, p in train.pairs], net_cfg, train_cfg,
                                       not args.quiet)
        model, save = BradleyTerryReward(net, next(net.parameters()).device), lambda: save_bradley_terry(
            args.out, net, log, overwrite=args.overwrite, demo_seeds=trained_seeds)
    else:
        from robo_reward.rewards.rapl import (
            RaplConfig,
            RaplTrainConfig,
            save_rapl,
            train_rapl,
        )

        ordered = [(episodes[a], episodes[b]) if p == 1.0 else (episodes[b], episodes[a])
                   for a, b, p in train.pairs if p != TIE]
        ordered += [(episodes[c], episodes[f], episodes[r]) for c, f, r in train.triplets]
        if not ordered:
            raise RoboRewardError(f"{args.preferences}: no strict preferences (A or B) to train RAPL on")
        experts = expert_keys(store, train, args.experts)
        cfg = RaplConfig(cameras=tuple(cameras), image_size=args.image_size)
        train_cfg = RaplTrainConfig(**({"epochs": args.steps} if args.steps else {}), seed=args.seed,
                                    device=args.device)
        model, log = train_rapl([episodes[k] for k in experts], ordered, cfg, train_cfg, progress=not args.quiet)
        log["experts"] = experts
        save = lambda: save_rapl(args.out, model, log, overwrite=args.overwrite, demo_seeds=trained_seeds)
    # held-out preference accuracy: the model must order each held-out pair as labeled (RAPL: not pairs
    # with an expert video in them, trivially right; triplets by OT against their own reference; the
    # Bradley-Terry model does not learn triplets, so they are not held against it)
    score = {}

    def episode_value(key: str) -> float:
        if key not in score:
            score[key] = episode_score(model.score_episode(episodes[key]))
        return score[key]

    def closeness(key: str, reference: str) -> float:
        with torch.inference_mode():
            views = [model.embed(episodes[k].select(model.cameras)) for k in (key, reference)]
            return float(model.ot_rewards(*views).sum())

    pairs = [(a, b) if p == 1.0 else (b, a) for a, b, p in test.pairs if p != TIE]
    if args.kind == "rapl":
        pairs = [(w, lo) for w, lo in pairs if w not in log["experts"] and lo not in log["experts"]]
    correct = [episode_value(w) > episode_value(lo) for w, lo in pairs]
    if args.kind == "rapl":
        correct += [closeness(c, r) > closeness(f, r) for c, f, r in test.triplets]
    log.update(heldout_preferences=len(correct), heldout_accuracy=float(np.mean(correct)) if correct else None,
               train_preferences=len(train.pairs) + (len(train.triplets) if args.kind == "rapl" else 0),
               labels=str(args.preferences))
    save()
    acc = "n/a (too few labels to hold any out)" if not correct else f"{log['heldout_accuracy']:.1%} on {len(correct)}"
    print(f"{args.kind} reward trained on {log['train_preferences']} labeled preferences; held-out preference "
          f"accuracy {acc} -> {args.out}")


def expert_keys(store, prefs, count: int) -> list[str]:
    """RAPL's expert videos from labels: episodes labeled successful or scored 5, else the most preferred
    (`prefs`: the training preferences only, so held-out labels never pick an expert)."""
    good = [lb.items[0] for lb in store.labels() if (lb.mode, lb.value) in (("success", True), ("score", 5))]
    wins: dict[str, float] = {}
    for a, b, p in prefs.pairs:
        wins[a] = wins.get(a, 0.0) + p
        wins[b] = wins.get(b, 0.0) + 1 - p
    ranked = list(dict.fromkeys([*good, *sorted(wins, key=wins.get, reverse=True)]))
    known = prefs.keys()
    return [k for k in ranked if k in known][:count]


def load_labeled(root: str, cameras: list[str], indices: list[int] | None):
    """A LeRobotDataset (success labels from the simulator) or a `reward augment` set (1-5 labels)."""
    from robo_reward.data.augment import LABELS_FILE, load_training_set
    from robo_reward.data.episodes import load_episodes

    if (Path(root) / LABELS_FILE).is_file():
        items = load_training_set(root)
        return items if indices is None else [items[i] for i in indices]
    return load_episodes(root, cameras, indices)


def preference_pairs(episodes) -> list:
    """Preferences from the simulator's labels: every success is preferred over every failure, and a
    full successful episode over its own first half (progress made beats progress not yet made)."""
    good = [e for e in episodes if e.succeeded]
    bad = [e for e in episodes if not e.succeeded]
    pairs = [(g.episode, b.episode) for g in good for b in bad]
    pairs += [(g.episode, g.episode.clip(max(2, g.episode.length // 2))) for g in good]
    if not pairs:
        raise RoboRewardError("need successful episodes to derive preferences from")
    return pairs


def cmd_reward_augment(args: argparse.Namespace) -> None:
    from robo_reward.data.augment import build_training_set
    from robo_reward.fileutil import refuse_output_inside_inputs

    refuse_output_inside_inputs(Path(args.out), [Path(args.dataset)])
    counterfactuals = {}
    for item in args.counterfactual:
        task, _, score = item.rpartition("=")
        if not task or not score.isdigit():
            raise RoboRewardError(f"--counterfactual expects 'TASK=SCORE' (score 1-5), got {item!r}")
        counterfactuals[task] = int(score)
    counts = build_training_set(args.dataset, args.out, args.camera, args.clip_fractions, counterfactuals,
                                overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {counts['samples']} samples ({counts['original']} original, {counts['temporal_clip']} temporal "
          f"clips, {counts['counterfactual']} counterfactual) -> {Path(args.out) / 'labels.jsonl'}")


def refuse_frames_drawn_otherwise(model, model_path, episodes, source: str) -> None:
    """A model scores simulated frames only if they were drawn as its training frames were."""
    for item in episodes:
        mismatch = render_mismatch(str(model_path), getattr(model, "render_settings", None), item.render, source)
        if mismatch:
            raise RoboRewardError(mismatch)


def cmd_reward_eval(args: argparse.Namespace) -> None:
    from robo_reward.fileutil import refuse_output_inside_inputs, staged_dir
    from robo_reward.rewards.evaluation import evaluate_reward_model, plot_progress
    from robo_reward.rewards.registry import load_reward_model

    refuse_output_inside_inputs(Path(args.out), [Path(args.dataset), Path(args.model)])
    model = load_reward_model(args.model, args.device)
    episodes = load_labeled(args.dataset, list(model.cameras), _episodes_arg(args.episodes))
    refuse_frames_drawn_otherwise(model, args.model, episodes[:1], args.dataset)
    summary, rows, results = evaluate_reward_model(model, episodes, progress=not args.quiet)
    with staged_dir(args.out, args.overwrite) as tmp:
        write_json(tmp / "reward_eval.json", {"model": str(args.model), "dataset": str(args.dataset),
                                                "summary": summary, "episodes": rows})
        plot_progress(tmp / "progress.png", episodes, results)
    print(json.dumps(summary, indent=2))
    print(f"per-episode results {Path(args.out) / 'reward_eval.json'}, figure {Path(args.out) / 'progress.png'}")


def cmd_reward_score(args: argparse.Namespace) -> None:
    from robo_reward.data.episodes import LabeledEpisode, load_episode, read_video
    from robo_reward.fileutil import staged_dir
    from robo_reward.rewards.base import Episode
    from robo_reward.rewards.evaluation import plot_progress
    from robo_reward.rewards.registry import load_reward_model
    from robo_reward.rewards.shaping import ShapingConfig, shaped_episode_rewards

    model = load_reward_model(args.model, args.device)
    source = Path(args.source)
    if source.is_dir():
        item = load_episode(source, args.episode, list(model.cameras))
        refuse_frames_drawn_otherwise(model, args.model, [item], str(source))
        episode = Episode(item.episode.frames, args.task or item.episode.task, item.episode.state)
        item = LabeledEpisode(episode, item.success, item.source, render=item.render, seed=item.seed)
    else:
        if not args.task:
            raise RoboRewardError("--task is required when scoring a video file")
        if len(model.cameras) != 1:
            raise RoboRewardError(f"model needs {len(model.cameras)} cameras {list(model.cameras)}; a video file "
                                  "has one view — score a LeRobotDataset episode instead")
        episode = Episode({model.cameras[0]: read_video(source)}, args.task)
        item = LabeledEpisode(episode, np.zeros(episode.length, bool), str(source))
    result = model.score_episode(item.episode)
    if not result.ok:
        raise RoboRewardError(f"{args.model} gave no reward for {source}: {result.error}")
    rewards = shaped_episode_rewards(model, result.progress, result.success, ShapingConfig(mode=args.shaping)) \
        if len(result.progress) > 1 else np.zeros(0, np.float32)
    print(f"{'step':>5} {'progress':>9} {'success':>8} {'reward':>9}")
    for t in range(item.episode.length):
        r = f"{rewards[t - 1]:9.4f}" if t else f"{'':>9}"
        print(f"{t:5d} {result.progress[t]:9.4f} {str(bool(result.success[t])):>8} {r}")
    if result.score is not None:
        print(f"episode score {result.score}")
    with staged_dir(args.out, args.overwrite) as tmp:
        write_json(tmp / "scores.json", {"source": str(source), "task": item.episode.task, "model": str(args.model),
                                          "shaping": args.shaping, "score": result.score,
                                          "progress": result.progress.tolist(), "success": result.success.tolist(),
                                          "reward": rewards.tolist()})
        plot_progress(tmp / "progress.png", [item], [result])
    print(f"figure {Path(args.out) / 'progress.png'}, values {Path(args.out) / 'scores.json'}")


def cmd_reward_combine(args: argparse.Namespace) -> None:
    from robo_reward.rewards.combined import save_progress_success

    model = save_progress_success(args.out, args.progress, args.success, args.success_hold,
                                  overwrite=args.overwrite, device=args.device)
    print(f"wrote {args.out}: progress from {model.progress_model.name} ({args.progress}), success from "
          f"{model.success_model.name} ({args.success}) held {args.success_hold} frame(s); "
          f"cameras {list(model.cameras)}")


def add_reward_parsers(groups, command) -> None:
    from robo_reward.rewards.shaping import SHAPING_MODES

    reward = groups.add_parser("reward", help="reward models").add_subparsers(dest="cmd", required=True)
    p = command(reward, "train", cmd_reward_train, "train a hop model / success classifier, or calibrate CLIP")
    p.add_argument("kind", choices=["hop", "classifier", "clip", "rapl", "bradley-terry"])
    p.add_argument("--dataset", nargs="+", default=[],
                   help="LeRobotDataset(s) with camera videos (e.g. demonstrations plus labeled rollouts); with "
                        "--preferences: where the labeled recordings are now, if they moved")
    p.add_argument("--preferences", metavar="DB", help="label database of `robo-reward label serve`: preferences "
                   "train rapl / bradley-terry, keyframes replace the hop model's gripper keyframes")
    p.add_argument("--heldout", type=open_fraction, default=0.2, help="with --preferences: fraction held out for accuracy")
    p.add_argument("--episodes", help="comma-separated episode indices (hop: e.g. 0 for one-shot adaptation)")
    p.add_argument("--cameras", nargs="*", help="cameras to use (default: all in the dataset)")
    p.add_argument("--image-size", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=None, help="gradient steps (rapl: epochs over the pairs)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="hop: state pairs, classifier: frames per step")
    p.add_argument("--experts", type=positive_int, default=1, help="rapl: successful episodes used as expert videos")
    p.add_argument("--clip-model", default="ViT-B-32", help="clip: open_clip name or local directory")
    p.add_argument("--clip-pretrained", default="laion2b_s34b_b79k", help="clip: tag or weights file")
    p.add_argument("--out", required=True)

    p = command(reward, "combine", cmd_reward_combine,
                "one model's progress (shaping) with another's success call (r_gold), as one reward model")
    p.add_argument("--progress", required=True, help="reward-model directory whose progress shapes the reward (hop)")
    p.add_argument("--success", required=True, help="reward-model directory that decides success (classifier)")
    p.add_argument("--success-hold", type=positive_int, default=1, metavar="K",
                   help="count success once the call has held K frames in a row (filters one-frame flickers)")
    p.add_argument("--out", required=True)

    p = command(reward, "augment", cmd_reward_augment,
                "RoboReward negative augmentation: temporal clips + counterfactual tasks -> 1-5 training set")
    p.add_argument("--dataset", required=True, help="LeRobotDataset with successful episodes and camera videos")
    p.add_argument("--camera", help="camera to use (default: the first)")
    p.add_argument("--clip-fractions", type=open_fraction, nargs="*", default=[0.25, 0.5, 0.75])
    p.add_argument("--counterfactual", action="append", default=[], metavar="TASK=SCORE",
                   help="another instruction and the 1-5 score the episodes' final state deserves for it")
    p.add_argument("--out", required=True)

    p = command(reward, "eval", cmd_reward_eval, "VOC, success accuracy/F1, preference accuracy, score MAE")
    p.add_argument("--model", required=True, help="reward-model directory, open_clip directory or clip:NAME")
    p.add_argument("--dataset", required=True, help="LeRobotDataset, or a `reward augment` training set")
    p.add_argument("--episodes", help="comma-separated episode indices (default: all)")
    p.add_argument("--out", required=True)

    p = command(reward, "score", cmd_reward_score, "per-step progress and reward of one video or dataset episode")
    p.add_argument("source", help="an mp4 file or a LeRobotDataset directory")
    p.add_argument("--model", required=True)
    p.add_argument("--task", help="instruction (default for datasets: the episode's task)")
    p.add_argument("--episode", type=non_negative_int, default=0, help="episode index in a dataset")
    p.add_argument("--shaping", choices=SHAPING_MODES, default="policy-invariant")
    p.add_argument("--out", required=True)
