"""Aligning N streams in time (camera images, joint states) by their source stamps.

message_filters is not installable here, so this is the small approximate-time policy the reward
server needs: a set is emitted when every stream has a message within `tolerance_s` of the
newest message of the reference stream; older messages are dropped once a newer set is emitted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def nearest_in_time(entries: Iterable[tuple[float, T]], stamp: float, tolerance_s: float) -> T | None:
    """The value of the (stamp, value) entry nearest `stamp` if within `tolerance_s`, else None; of
    two at the same distance, the later entry."""
    best: tuple[float, T] | None = None
    for entry in entries:
        if best is None or abs(entry[0] - stamp) <= abs(best[0] - stamp):
            best = entry
    return best[1] if best is not None and abs(best[0] - stamp) <= tolerance_s else None


@dataclass
class AlignedSet:
    stamp: float  # the reference stream's stamp
    items: dict[str, Any]
    skew_s: float  # largest |stamp - reference stamp| in the set


@dataclass
class ApproximateTimeSync:
    streams: Sequence[str]  # the first is the reference (e.g. the main camera)
    tolerance_s: float
    queue_size: int = 30
    dropped: int = 0
    _queues: dict[str, deque] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.streams:
            raise ValueError("need at least one stream to align")
        self._queues = {s: deque(maxlen=self.queue_size) for s in self.streams}

    def add(self, stream: str, stamp: float, item: Any) -> list[AlignedSet]:
        """Queue a message; returns the sets it completed (oldest first)."""
        q = self._queues[stream]
        if q and stamp < q[-1][0]:  # out of order or a clock jump: start this stream over
            self.dropped += len(q)
            q.clear()
        q.append((stamp, item))
        return self._emit()

    def _emit(self) -> list[AlignedSet]:
        ref_name = self.streams[0]
        out = []
        ref_q = self._queues[ref_name]
        while ref_q:
            ref_stamp, ref_item = ref_q[0]
            chosen, skew, waiting = {ref_name: ref_item}, 0.0, False
            for name in self.streams[1:]:
                q = self._queues[name]
                best = min(q, key=lambda m: abs(m[0] - ref_stamp), default=None)
                if best is None or abs(best[0] - ref_stamp) > self.tolerance_s:
                    # a later message may still match unless this stream is already past the window
                    if q and q[-1][0] > ref_stamp + self.tolerance_s:
                        waiting = False
                        chosen = None
                        break
                    waiting = True
                    break
                chosen[name] = best[1]
                skew = max(skew, abs(best[0] - ref_stamp))
            if waiting:
                break
            ref_q.popleft()
            if chosen is None:  # no partner will come for this reference message
                self.dropped += 1
                continue
            out.append(AlignedSet(ref_stamp, chosen, skew))
            for name in self.streams[1:]:  # partners older than this set can never be used again
                q = self._queues[name]
                while q and q[0][0] < ref_stamp - self.tolerance_s:
                    q.popleft()
        return out
