"""`robo-reward label ...`: serve the labeling page, export / import labels, agreement between labelers."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from pathlib import Path

from robo_reward.cliargs import existing_file, port_number
from robo_reward.errors import RoboRewardError

DEFAULT_DB = "labels/labels.db"


def default_cache() -> Path:
    return Path(os.environ.get("ROBO_REWARD_CACHE", Path.home() / ".cache" / "robo_reward")) / "label_clips"


def open_catalog(sources, store, cache: Path, task: str):
    """Scan the sources (mp4 hashes cached in the database) and record the episodes' identities."""
    from robo_reward.labeling.sources import scan_sources

    hashes = store.file_hashes()
    catalog = scan_sources(sources, cache, task, hashes)
    store.save_file_hashes(hashes)
    store.add_episodes(catalog.episodes)
    return catalog


def cmd_label_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from robo_reward.labeling.sampling import ItemSampler, load_scores
    from robo_reward.labeling.server import (
        LabelingSession,
        create_app,
        is_loopback,
        page_url,
    )
    from robo_reward.labeling.store import LabelStore

    token = args.token or os.environ.get("ROBO_REWARD_LABEL_TOKEN")
    if not is_loopback(args.host) and not token:
        raise RoboRewardError(f"--host {args.host} exposes the labels beyond this machine: give --token (or set "
                              f"ROBO_REWARD_LABEL_TOKEN), e.g. --token {secrets.token_urlsafe(16)}")
    store = LabelStore(args.db)
    catalog = open_catalog(args.sources, store, Path(args.cache), args.task)
    for problem in catalog.problems:
        print(f"warning: {problem}")
    if not catalog.episodes:
        raise RoboRewardError(f"no playable episodes in {args.sources}")
    scores = load_scores(args.scores, catalog.episodes) if args.scores else None
    sampler = ItemSampler([e.key for e in catalog.episodes], scores, args.strategy, args.seed)
    session = LabelingSession(catalog, store, sampler, args.labeler, args.mode, args.task)
    print(f"{len(catalog.episodes)} episodes, {store.count()} labels in {args.db}; labeling as {args.labeler!r} at "
          f"{page_url(args.host, args.port, token)}", flush=True)
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, [page_url(args.host, args.port, token)]).start()
    uvicorn.run(create_app(session, token, args.host), host=args.host, port=args.port, log_level="warning")


def cmd_label_scores(args: argparse.Namespace) -> None:
    """Score every episode with one or more reward models (an ensemble) for --strategy closest/disagreement."""
    from tqdm.auto import tqdm

    from robo_reward.fileutil import write_json
    from robo_reward.labeling.sources import scan_sources
    from robo_reward.labeling.training import load_frames
    from robo_reward.rewards.evaluation import episode_score
    from robo_reward.rewards.registry import load_reward_model

    if Path(args.out).exists() and not args.overwrite:
        raise RoboRewardError(f"{args.out} exists; pass --overwrite to replace it")
    models = [load_reward_model(m, args.device) for m in args.model]
    catalog = scan_sources(args.sources, Path(args.cache), args.task)
    for problem in catalog.problems:
        print(f"warning: {problem}")
    scores, failed = {}, []
    for ref in tqdm(catalog.episodes, desc="score episodes", disable=args.quiet):
        try:
            episode = load_frames([ref], None, progress=False)[ref.key]
        except RoboRewardError as exc:
            failed.append(f"{ref.name}: {exc}")
            continue
        results = [m.score_episode(episode) for m in models]
        bad = [r.error for r in results if not r.ok]
        if bad:
            failed.append(f"{ref.name}: no reward ({bad[0]})")
            continue
        scores[ref.key] = [episode_score(r) for r in results]
    write_json(Path(args.out), scores)
    for line in failed:
        print(f"warning: {line}")
    print(f"{len(scores)} episodes scored by {len(models)} model(s) -> {args.out} "
          f"(label serve --scores {args.out} --strategy {'disagreement' if len(models) > 1 else 'closest'})")


def cmd_label_export(args: argparse.Namespace) -> None:
    from robo_reward.labeling.store import LabelStore

    if Path(args.out).exists() and not args.overwrite:
        raise RoboRewardError(f"{args.out} exists; pass --overwrite to replace it")
    store = LabelStore(args.db)
    if args.format == "roboreward":
        from robo_reward.labeling.training import export_score_set

        n = export_score_set(store, Path(args.out), args.dataset, Path(args.cache), args.camera, args.overwrite,
                             not args.quiet)
        print(f"{n} scored episodes -> {args.out} (`robo-reward reward eval --dataset {args.out}` reports score MAE)")
        return
    n = store.export(args.out)
    print(f"{n} labels -> {args.out}")


def cmd_label_import(args: argparse.Namespace) -> None:
    from robo_reward.labeling.store import LabelStore

    added, duplicates = LabelStore(args.db).import_files(args.files)
    print(f"imported {added} labels into {args.db} ({duplicates} already there)")


def cmd_label_agreement(args: argparse.Namespace) -> None:
    from robo_reward.labeling.store import LabelStore

    stats = LabelStore(args.db).agreement()
    if args.json:
        print(json.dumps(stats, indent=2))
        return
    if not stats:
        print("no item was labeled by two labelers")
    for mode, pairs in stats.items():
        for who, s in pairs.items():
            kappa = "n/a" if s["kappa"] is None else f"{s['kappa']:.2f}"
            extra = f", mean |diff| {s['mean_abs_diff']:.2f}" if "mean_abs_diff" in s else ""
            print(f"{mode:9s} {who}: {s['items']} shared items, agreement {s['agreement']:.0%}, kappa {kappa}{extra}")


def add_label_parsers(groups, command) -> None:
    from robo_reward.labeling.sampling import STRATEGIES
    from robo_reward.labeling.store import MODES

    label = groups.add_parser("label", help="label recorded videos (web app)").add_subparsers(dest="cmd", required=True)
    p = command(label, "serve", cmd_label_serve, "web page for preferences, scores, success and keyframes")
    p.add_argument("sources", nargs="+", help="folders of mp4 files, LeRobotDataset directories, MCAP files")
    p.add_argument("--db", default=DEFAULT_DB, help="SQLite label database (created if missing)")
    p.add_argument("--labeler", default=os.environ.get("USER", "labeler"), help="who is labeling")
    p.add_argument("--mode", choices=list(MODES), default="pairwise", help="mode the page opens in")
    p.add_argument("--strategy", choices=STRATEGIES, default="random", help="how the next item is chosen")
    p.add_argument("--scores", help="JSON {episode: score or [ensemble scores]} for closest / disagreement")
    p.add_argument("--task", default="", help="instruction shown for sources that do not record one")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (anything but loopback needs --token)")
    p.add_argument("--port", type=port_number, default=8765)
    p.add_argument("--token", help="required from browsers (default: $ROBO_REWARD_LABEL_TOKEN)")
    p.add_argument("--cache", default=str(default_cache()), help="where MCAP images are encoded into clips")
    p.add_argument("--open", action="store_true", help="open the page in this machine's browser")

    p = command(label, "scores", cmd_label_scores, "score episodes with reward model(s) for uncertainty sampling")
    p.add_argument("sources", nargs="+")
    p.add_argument("--model", action="append", required=True, help="reward model (repeat for an ensemble)")
    p.add_argument("--task", default="the task", help="instruction for sources that do not record one")
    p.add_argument("--out", required=True, help="scores JSON for `label serve --scores`")
    p.add_argument("--cache", default=str(default_cache()))

    p = command(label, "export", cmd_label_export, "labels -> JSONL or Parquet (with episode identities)")
    p.add_argument("--db", default=DEFAULT_DB, type=existing_file, help="SQLite label database (must exist)")
    p.add_argument("--out", required=True, help="file.jsonl or file.parquet; a directory for --format roboreward")
    p.add_argument("--format", choices=["labels", "roboreward"], default="labels",
                   help="labels: every label; roboreward: 1-5 scores as a RoboReward-style set of clips")
    p.add_argument("--dataset", nargs="*", default=[], help="roboreward: where the recordings are, if they moved")
    p.add_argument("--camera", help="roboreward: the view to export (default: the first)")
    p.add_argument("--cache", default=str(default_cache()))

    p = command(label, "import", cmd_label_import, "merge other labelers' exports (duplicates skipped)")
    p.add_argument("files", nargs="+", type=existing_file, help=".jsonl / .parquet exports")
    p.add_argument("--db", default=DEFAULT_DB)

    p = command(label, "agreement", cmd_label_agreement, "agreement and Cohen's kappa between labelers")
    p.add_argument("--db", default=DEFAULT_DB, type=existing_file, help="SQLite label database (must exist)")
    p.add_argument("--json", action="store_true")
