"""Labels in SQLite (WAL mode: the web server writes while exports and training read).

A label is (labeler, mode, the episodes it is about, a value, when). Episodes are referred to by their
content hash (robo_reward.labeling.sources) with the path + episode index they were seen at, so labels
survive a re-export. Every label has a uid: importing the same file twice, or another labeler's file
that overlaps ours, adds nothing twice.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from robo_reward.errors import RoboRewardError

# mode -> (episode roles, allowed values); "skip" is a decision too (the item is not shown again)
MODES: dict[str, tuple[tuple[str, ...], Any]] = {
    "pairwise": (("a", "b"), {"A", "B", "equal", "skip"}),
    "triplet": (("reference", "a", "b"), {"A", "B", "skip"}),  # which of a / b is closer to the reference
    "score": (("episode",), {1, 2, 3, 4, 5, "skip"}),  # RoboReward's 1-5 end-of-episode progress
    "success": (("episode",), {True, False, "skip"}),
    "keyframes": (("episode",), None),  # sorted stage-boundary times in seconds, or "skip"
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    key TEXT PRIMARY KEY, source TEXT NOT NULL, episode_index INTEGER NOT NULL, task TEXT, duration REAL);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, uid TEXT UNIQUE NOT NULL, labeler TEXT NOT NULL, mode TEXT NOT NULL,
    created REAL NOT NULL, item0 TEXT NOT NULL, item1 TEXT, item2 TEXT, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS labels_by_labeler ON labels (labeler, mode, id);
CREATE INDEX IF NOT EXISTS labels_by_item ON labels (mode, item0, item1, item2);
CREATE TABLE IF NOT EXISTS file_hashes (file TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
"""


class LabelError(RoboRewardError):
    """A label, label file or database that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Label:
    uid: str
    labeler: str
    mode: str
    created: float
    items: tuple[str, ...]
    value: Any

    @property
    def skipped(self) -> bool:
        return self.value == "skip"


def check_label(mode: str, items: Sequence[str], value: Any) -> Any:
    """The value, normalized; LabelError naming the field otherwise."""
    if mode not in MODES:
        raise LabelError(f"mode {mode!r} unknown; expected one of {sorted(MODES)}")
    roles, allowed = MODES[mode]
    if len(items) != len(roles) or not all(isinstance(i, str) and i for i in items):
        raise LabelError(f"{mode}: expected episodes {list(roles)}, got {list(items)}")
    if len(set(items)) != len(items):
        raise LabelError(f"{mode}: the same episode twice in one label")
    if mode == "keyframes":
        if value == "skip":
            return value
        if not isinstance(value, list) or not all(isinstance(t, (int, float)) and math.isfinite(t) and t >= 0
                                                  for t in value):
            raise LabelError(f"keyframes: value must be a list of times in seconds (>= 0), got {value!r}")
        return sorted(float(t) for t in value)
    try:
        ok = value in allowed
    except TypeError:  # unhashable: a list or an object
        ok = False
    is_bool = isinstance(value, bool)  # True == 1 in Python: a score is never a bool, a success always is
    if not ok or (value != "skip" and is_bool != (mode == "success")):
        raise LabelError(f"{mode}: value {value!r} not allowed; expected one of {sorted(map(str, allowed))}")
    return value


class LabelStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise LabelError(f"{self.path}: not a usable label database ({exc})") from exc
        # caches that keep a request O(1) with 100k labels; dropped when another connection writes
        self._done: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._counts: Counter | None = None
        self._version = None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ episodes
    def add_episodes(self, episodes: Iterable) -> None:
        """Record where each episode (an EpisodeRef) was last seen."""
        with self.lock, self.db:
            self.db.executemany(
                "INSERT INTO episodes VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET source=excluded.source,"
                " episode_index=excluded.episode_index, task=excluded.task, duration=excluded.duration",
                [(e.key, e.source, e.index, e.task, e.duration) for e in episodes])

    def episode_identity(self, keys: Iterable[str]) -> dict[str, dict]:
        keys = list(set(keys))
        out = {}
        with self.lock:
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                rows = self.db.execute(f"SELECT key, source, episode_index FROM episodes WHERE key IN "
                                       f"({','.join('?' * len(part))})", part).fetchall()
                out.update({k: {"key": k, "source": s, "index": i} for k, s, i in rows})
        return out

    def file_hashes(self) -> dict[str, str]:
        with self.lock:
            return dict(self.db.execute("SELECT file, sha256 FROM file_hashes").fetchall())

    def save_file_hashes(self, hashes: dict[str, str]) -> None:
        with self.lock, self.db:
            self.db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?, ?)", hashes.items())

    # ------------------------------------------------------------------ labels
    def add(self, labeler: str, mode: str, items: Sequence[str], value: Any, created: float | None = None,
            uid: str | None = None) -> Label:
        if not labeler or not labeler.strip():
            raise LabelError("labeler: a name is required (who made this label)")
        value = check_label(mode, items, value)
        label = Label(uid or uuid.uuid4().hex, labeler.strip(), mode, created or time.time(), tuple(items), value)
        self._insert([label])
        return label

    def _insert(self, labels: Sequence[Label]) -> int:
        rows = [(lb.uid, lb.labeler, lb.mode, lb.created, *lb.items, *[None] * (3 - len(lb.items)),
                 json.dumps(lb.value)) for lb in labels]
        with self.lock, self.db:
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO labels (uid, labeler, mode, created, item0, item1, item2, value)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            added = self.db.total_changes - before
            if added != len(labels):  # some were already there: rebuild from the database when asked
                self._done.clear()
                self._counts = None
            for lb in labels if added == len(labels) else ():
                if (lb.labeler, lb.mode) in self._done:
                    self._done[(lb.labeler, lb.mode)].add(lb.items)
                if self._counts is not None:
                    self._counts[(lb.labeler, lb.mode)] += 1
        return added

    def _drop_caches_if_changed(self) -> None:
        """PRAGMA data_version moves when another connection (an import, a second server) commits."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._done.clear()
            self._counts = None
            self._version = version

    def undo(self, labeler: str) -> Label | None:
        """Remove this labeler's latest label (any mode); returns it, so the page can show it again."""
        with self.lock, self.db:
            row = self.db.execute("SELECT * FROM labels WHERE labeler = ? ORDER BY id DESC LIMIT 1",
                                  (labeler,)).fetchone()
            if row is None:
                return None
            self.db.execute("DELETE FROM labels WHERE id = ?", (row[0],))
            label = self._label(row)
            self._done.get((label.labeler, label.mode), set()).discard(label.items)
            if self._counts is not None:
                self._counts[(label.labeler, label.mode)] -= 1
        return label

    @staticmethod
    def _label(row) -> Label:
        _, uid, labeler, mode, created, *items, value = row
        return Label(uid, labeler, mode, created, tuple(i for i in items if i is not None), json.loads(value))

    def done(self, labeler: str, mode: str) -> set[tuple[str, ...]]:
        """The items this labeler already decided in this mode (cached; kept current on add/undo)."""
        key = (labeler, mode)
        with self.lock:
            self._drop_caches_if_changed()
            if key not in self._done:
                rows = self.db.execute("SELECT item0, item1, item2 FROM labels WHERE labeler = ? AND mode = ?",
                                       key).fetchall()
                self._done[key] = {tuple(i for i in r if i is not None) for r in rows}
            return self._done[key]

    def count(self, mode: str | None = None, labeler: str | None = None) -> int:
        with self.lock:
            self._drop_caches_if_changed()
            if self._counts is None:
                self._counts = Counter({(who, m): n for who, m, n in self.db.execute(
                    "SELECT labeler, mode, COUNT(*) FROM labels GROUP BY labeler, mode")})
            return sum(n for (who, m), n in self._counts.items()
                       if (mode is None or m == mode) and (labeler is None or who == labeler))

    def labels(self, mode: str | None = None) -> list[Label]:
        with self.lock:
            rows = self.db.execute("SELECT * FROM labels" + (" WHERE mode = ?" if mode else "") + " ORDER BY id",
                                   (mode,) if mode else ()).fetchall()
        return [self._label(r) for r in rows]

    # ------------------------------------------------------------------ files
    def export(self, out: str | Path) -> int:
        """All labels with their episodes' identities -> .jsonl or .parquet (written whole, then renamed)."""
        out = Path(out)
        labels = self.labels()
        identity = self.episode_identity(k for lb in labels for k in lb.items)
        records = [{"uid": lb.uid, "labeler": lb.labeler, "mode": lb.mode, "created": lb.created,
                    "value": json.dumps(lb.value),
                    "episodes": json.dumps([{"role": role, **identity.get(k, {"key": k})}
                                            for role, k in zip(MODES[lb.mode][0], lb.items)])} for lb in labels]
        tmp = out.with_name(out.name + ".partial")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".jsonl":
            tmp.write_text("".join(json.dumps({**r, "value": json.loads(r["value"]),
                                               "episodes": json.loads(r["episodes"])}) + "\n" for r in records))
        elif out.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            columns = ("uid", "labeler", "mode", "created", "value", "episodes")
            pq.write_table(pa.table({c: [r[c] for r in records] for c in columns}), tmp)
        else:
            raise LabelError(f"{out}: export to .jsonl or .parquet")
        tmp.replace(out)
        return len(records)

    def import_files(self, paths: Sequence[str | Path]) -> tuple[int, int]:
        """Labels from other labelers' exports; (added, already present). A bad file adds nothing."""
        added = duplicates = 0
        for path in map(Path, paths):
            records = read_label_file(path)
            labels, episodes = [], {}
            for n, r in enumerate(records, 1):
                try:
                    items = [e["key"] for e in r["episodes"]]
                    value = check_label(r["mode"], items, r["value"])
                    labels.append(Label(str(r["uid"]), str(r["labeler"]), r["mode"], float(r["created"]), tuple(items),
                                        value))
                    episodes.update({e["key"]: (str(e["source"]), int(e.get("index", 0)))
                                     for e in r["episodes"] if "source" in e})
                except (KeyError, TypeError, ValueError, LabelError) as exc:
                    raise LabelError(f"{path}: record {n}: {exc} (expected uid, labeler, mode, created, value, "
                                     f"episodes[{{key, source, index}}])") from None
            with self.lock, self.db:
                self.db.executemany("INSERT OR IGNORE INTO episodes VALUES (?, ?, ?, NULL, NULL)",
                                    [(k, source, index) for k, (source, index) in episodes.items()])
            new = self._insert(labels)
            added, duplicates = added + new, duplicates + len(labels) - new
        return added, duplicates

    # ------------------------------------------------------------------ agreement
    def agreement(self) -> dict[str, dict[str, dict]]:
        """mode -> 'labeler1 | labeler2' -> {items, agreement, kappa[, mean_abs_diff]} on items both decided."""
        latest: dict[str, dict[str, dict[tuple, Any]]] = defaultdict(lambda: defaultdict(dict))
        for lb in self.labels():
            if lb.skipped or lb.mode == "keyframes":
                continue
            items, value = canonical(lb)
            latest[lb.mode][lb.labeler][items] = value
        out: dict[str, dict[str, dict]] = {}
        for mode, by_labeler in latest.items():
            for x, y in combinations(sorted(by_labeler), 2):
                common = sorted(set(by_labeler[x]) & set(by_labeler[y]))
                if not common:
                    continue
                vx = [by_labeler[x][i] for i in common]
                vy = [by_labeler[y][i] for i in common]
                stats = {"items": len(common), "agreement": sum(a == b for a, b in zip(vx, vy)) / len(common),
                         "kappa": cohen_kappa(vx, vy)}
                if mode == "score":
                    stats["mean_abs_diff"] = sum(abs(a - b) for a, b in zip(vx, vy)) / len(common)
                out.setdefault(mode, {})[f"{x} | {y}"] = stats
        return out


def canonical(label: Label) -> tuple[tuple[str, ...], Any]:
    """Order-free item key: (a, b) and (b, a) are the same question, with A/B swapped."""
    items, value = label.items, label.value
    pair = items[-2:]
    if label.mode in ("pairwise", "triplet") and pair[0] > pair[1]:
        items = items[:-2] + (pair[1], pair[0])
        value = {"A": "B", "B": "A"}.get(value, value)
    return items, value


def cohen_kappa(x: Sequence, y: Sequence) -> float | None:
    """Agreement beyond chance; None when chance agreement is already 1 (one category only)."""
    n = len(x)
    observed = sum(a == b for a, b in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    expected = sum(cx[c] * cy[c] for c in set(cx) | set(cy)) / n ** 2
    return None if expected >= 1 else (observed - expected) / (1 - expected)


def read_label_file(path: Path) -> list[dict]:
    if not path.is_file():
        raise LabelError(f"{path}: label file not found")
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LabelError(f"{path}:{n}: not JSON ({exc})") from None
        return out
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
            return [{**r, "value": json.loads(r["value"]), "episodes": json.loads(r["episodes"])} for r in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's errors are OSError / ValueError
            raise LabelError(f"{path}: not a label export ({type(exc).__name__}: {exc})") from None
    raise LabelError(f"{path}: expected a .jsonl or .parquet label export")
