"""Which item to label next: at random, or where a reward model is least sure — the pair whose scores
are closest, or where an ensemble's members disagree most about which episode is better.

Scores come as {episode: score or [score per ensemble member]}, episode = content hash or "file#index".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from robo_reward.labeling.sources import EpisodeRef
from robo_reward.labeling.store import MODES, LabelError

STRATEGIES = ("random", "closest", "disagreement")
CANDIDATES = 512  # random candidate pairs scored per request (plus score neighbours), so a request stays O(1)


def load_scores(path: str | Path, episodes: Sequence[EpisodeRef]) -> dict[str, np.ndarray]:
    """Scores per content hash; entries that match no episode are ignored, malformed ones are errors."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: cannot read scores ({exc})") from None
    if not isinstance(raw, dict):
        raise LabelError(f"{path}: expected a JSON object {{episode: score or [scores]}}")
    names = {e.name: e.key for e in episodes} | {e.key: e.key for e in episodes}
    out = {}
    for name, value in raw.items():
        try:
            arr = np.atleast_1d(np.asarray(value, dtype=float)) if isinstance(value, (int, float, list)) else None
        except (TypeError, ValueError):  # ["x"], ragged lists
            arr = None
        if arr is None or arr.ndim != 1 or not len(arr) or not np.all(np.isfinite(arr)):
            raise LabelError(f"{path}: {name!r}: expected a finite score or a list of scores, got {value!r}")
        if name in names:
            out[names[name]] = arr
    return out


class ItemSampler:
    def __init__(self, keys: Sequence[str], scores: Mapping[str, np.ndarray] | None = None,
                 strategy: str = "random", seed: int = 0):
        if strategy not in STRATEGIES:
            raise LabelError(f"strategy {strategy!r} unknown; expected one of {list(STRATEGIES)}")
        scores = dict(scores or {})
        if strategy != "random":
            missing = [k for k in keys if k not in scores]
            if not scores or missing:
                raise LabelError(f"strategy {strategy!r} needs a score for every episode; {len(missing)} of "
                                 f"{len(keys)} have none")
            members = {len(scores[k]) for k in keys}
            if len(members) != 1:
                raise LabelError(f"strategy {strategy!r} needs the same number of scores for every episode; "
                                 f"got {sorted(members)}")
            if strategy == "disagreement" and members.pop() < 2:
                raise LabelError("strategy 'disagreement' needs >= 2 ensemble scores per episode")
        self.keys, self.strategy = list(keys), strategy
        self.rng = np.random.default_rng(seed)
        self.members = np.stack([scores[k] for k in self.keys]) if strategy != "random" else None

    def next(self, mode: str, done: set[tuple[str, ...]], exclude: set[str] = frozenset()) -> tuple[str, ...] | None:
        """The next item (episode keys in the mode's role order) not yet decided; None when all are."""
        alive = np.array([k not in exclude for k in self.keys], bool)
        if len(MODES[mode][0]) == 1:
            return self._single(done, alive)
        if mode == "pairwise":
            pair = self._pair(done, alive, None)
            return None if pair is None else self._shuffled(pair)
        for reference in self._references(alive):  # the next reference whose pairs are not all decided
            others = alive.copy()
            others[reference] = False
            pair = self._pair(done, others, self.keys[reference])
            if pair is not None:
                return (self.keys[reference], *self._shuffled(pair))
        return None

    # ------------------------------------------------------------------ helpers
    def _shuffled(self, pair: tuple[str, str]) -> tuple[str, str]:
        return pair if self.rng.random() < 0.5 else (pair[1], pair[0])  # no side is favoured

    def _single(self, done, alive) -> tuple[str] | None:
        todo = [i for i in np.flatnonzero(alive) if (self.keys[i],) not in done]
        if not todo:
            return None
        if self.strategy == "random":
            return (self.keys[self.rng.choice(todo)],)
        m = self.members[todo]
        # least sure: ensemble spread, or (one score) closest to the middle of the observed range
        doubt = m.std(1) if m.shape[1] > 1 else -np.abs(m[:, 0] - np.median(self.members[:, 0]))
        return (self.keys[todo[int(np.argmax(doubt))]],)

    def _references(self, alive) -> list[int]:
        """Candidate references in order: the best-scored episodes first (expert-like), else random."""
        idx = np.flatnonzero(alive)
        if len(idx) < 3:
            return []
        if self.members is None:
            return [int(i) for i in self.rng.permutation(idx)]
        return [int(i) for i in idx[np.argsort(-self.members[idx].mean(1), kind="stable")]]

    def _pair(self, done, alive, reference: str | None) -> tuple[str, str] | None:
        idx = np.flatnonzero(alive)
        if len(idx) < 2:
            return None
        prefix = () if reference is None else (reference,)

        def undecided(i: int, j: int) -> bool:
            a, b = self.keys[i], self.keys[j]
            return i != j and (*prefix, a, b) not in done and (*prefix, b, a) not in done

        cand = self.rng.choice(idx, size=(CANDIDATES, 2))
        if self.members is not None:  # neighbours in score order are the closest pairs
            order = idx[np.argsort(self.members[idx].mean(1))]
            cand = np.concatenate([cand] + [np.stack([order[:-k], order[k:]], 1) for k in (1, 2, 3) if k < len(order)])
        cand = [(int(i), int(j)) for i, j in cand if undecided(i, j)]
        if not cand:  # nearly everything decided: look at every remaining pair once
            cand = [(int(i), int(j)) for n, i in enumerate(idx) for j in idx[n + 1:] if undecided(i, j)]
            if not cand:
                return None
        if self.strategy == "random":
            i, j = cand[self.rng.integers(len(cand))]
        else:
            c = np.asarray(cand)
            si, sj = self.members[c[:, 0]], self.members[c[:, 1]]
            if self.strategy == "closest":
                best = np.argmin(np.abs(si.mean(1) - sj.mean(1)))
            else:  # members' P(i better than j) under Bradley-Terry; the spread is the disagreement
                best = np.argmax((1 / (1 + np.exp(-(si - sj)))).std(1))
            i, j = cand[int(best)]
        return self.keys[i], self.keys[j]
