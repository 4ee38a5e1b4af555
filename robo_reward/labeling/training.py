"""From labels to reward-model training data: the labeled episodes' frames (found again by content
hash in the sources the database remembers, or in sources given now), preference pairs and triplets
with a seeded held-out split, keyframes for the hop model, and 1-5 scores as a RoboReward-style set."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from robo_reward.labeling.sources import EpisodeRef, decode_view, scan_sources
from robo_reward.labeling.store import LabelError, LabelStore
from robo_reward.rewards.base import Episode

TIE = 0.5


@dataclass
class Preferences:
    pairs: list[tuple[str, str, float]]  # (a, b, P(a preferred)): 1, 0 or 0.5 for "equal"
    triplets: list[tuple[str, str, str]]  # (closer, farther, reference)

    def keys(self) -> set[str]:
        return {k for p in self.pairs for k in p[:2]} | {k for t in self.triplets for k in t}

    def split(self, heldout: float, seed: int) -> tuple[Preferences, Preferences]:
        """Seeded split of pairs and triplets alike (at least one of each kind trains)."""
        def cut(items):
            order = np.random.default_rng(seed).permutation(len(items))
            n_test = round(heldout * len(items)) if len(items) > 1 else 0
            return [items[i] for i in order[n_test:]], [items[i] for i in order[:n_test]]

        (p_train, p_test), (t_train, t_test) = cut(self.pairs), cut(self.triplets)
        return Preferences(p_train, t_train), Preferences(p_test, t_test)


def preferences_from(store: LabelStore) -> Preferences:
    """Each labeler's latest decision per item; skips are not preferences."""
    latest = {}
    for lb in store.labels():
        if lb.mode in ("pairwise", "triplet") and not lb.skipped:
            latest[(lb.labeler, lb.mode, lb.items)] = lb
    pairs = [(lb.items[0], lb.items[1], {"A": 1.0, "B": 0.0, "equal": TIE}[lb.value])
             for lb in latest.values() if lb.mode == "pairwise"]
    triplets = [(lb.items[1], lb.items[2], lb.items[0]) if lb.value == "A" else (lb.items[2], lb.items[1], lb.items[0])
                for lb in latest.values() if lb.mode == "triplet"]
    if not pairs and not triplets:
        raise LabelError(f"{store.path}: no pairwise or triplet preferences to train on")
    return Preferences(pairs, triplets)


def keyframe_labels(store: LabelStore) -> dict[str, list[float]]:
    """Episode key -> the latest keyframe times (seconds) anyone marked."""
    return {lb.items[0]: lb.value for lb in store.labels("keyframes") if not lb.skipped}


def locate(store: LabelStore, keys: Iterable[str], sources: Sequence[str], cache: Path) -> dict[str, EpisodeRef]:
    """Find each labeled episode again by content hash: in `sources`, else where it was labeled."""
    keys = set(keys)
    remembered = {v["source"] for v in store.episode_identity(keys).values()}
    paths = list(dict.fromkeys([*sources, *sorted(remembered)]))
    catalog = scan_sources(paths, cache)
    found = {k: e for k, e in catalog.by_key().items() if k in keys}
    missing = keys - set(found)
    if missing:
        skipped = f"; skipped while scanning: {'; '.join(catalog.problems)}" if catalog.problems else ""
        raise LabelError(f"{len(missing)} labeled episode(s) not found in {paths} (by content hash); pass the "
                         f"recordings with --dataset{skipped}")
    return found


def load_frames(refs: Iterable[EpisodeRef], cameras: Sequence[str] | None = None,
                progress: bool = True) -> dict[str, Episode]:
    """Decoded episodes (all views cut to a common length) by key."""
    out = {}
    for ref in tqdm(list(refs), desc="decode labeled episodes", disable=not progress, mininterval=1.0):
        views = [v for v in ref.views if cameras is None or v.camera in cameras]
        if cameras is not None and len(views) != len(cameras):
            raise LabelError(f"{ref.name}: has cameras {[v.camera for v in ref.views]}, need {list(cameras)}")
        frames = {v.camera: decode_view(v) for v in views}
        n = min(len(f) for f in frames.values())
        out[ref.key] = Episode({c: f[:n] for c, f in frames.items()}, ref.task or "the task")
    return out


def export_score_set(store: LabelStore, out: Path, sources: Sequence[str], cache: Path, camera: str | None = None,
                     overwrite: bool = False, progress: bool = True) -> int:
    """1-5 score labels -> a RoboReward-style training/eval set (the format `reward augment` writes and
    `reward eval` reads: labels.jsonl rows {video, task, score} + info.json)."""
    from robo_reward.data.augment import LABELS_FILE
    from robo_reward.data.episodes import write_video
    from robo_reward.fileutil import staged_dir

    scores = {}
    for lb in store.labels("score"):
        if not lb.skipped:
            scores[lb.items[0]] = lb.value  # the latest label of an episode wins
    if not scores:
        raise LabelError(f"{store.path}: no 1-5 score labels to export")
    refs = locate(store, scores, sources, cache)
    first = next(iter(refs.values()))
    camera = camera or first.views[0].camera
    rows = []
    with staged_dir(out, overwrite) as tmp:
        for key, ref in tqdm(refs.items(), desc="export scored episodes", disable=not progress):
            view = next((v for v in ref.views if v.camera == camera), None)
            if view is None:
                raise LabelError(f"{ref.name}: no camera {camera!r} (has {[v.camera for v in ref.views]})")
            frames = decode_view(view)
            fps = max(1, round(len(frames) / max(ref.duration, 1e-3)))
            write_video(tmp / "videos" / f"{key[:16]}.mp4", frames, fps)
            rows.append({"video": f"videos/{key[:16]}.mp4", "task": ref.task or "the task", "score": scores[key],
                         "source": ref.source, "episode_index": ref.index, "key": key})
        (tmp / LABELS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp / "info.json").write_text(json.dumps({"camera": camera, "samples": len(rows), "from": str(store.path)}))
    return len(rows)
