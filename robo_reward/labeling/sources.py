"""Recorded robot episodes as playable clips: folders of mp4 files, LeRobotDatasets (multi-camera) and
MCAP files written by the runtime recorder.

Every episode gets a content hash, so a label still finds its episode after the recording was moved,
renamed or re-exported: mp4 -> the file's bytes; LeRobotDataset -> the episode's recorded data rows
(actions, states, timestamps; not the episode/frame indices, which change on re-export); MCAP -> the
episode's image payloads. Views point into files under the sources (LeRobot's chunked videos by
start/end time, nothing is re-encoded); MCAP images are encoded once into H.264 clips in a cache folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from robo_reward.data.episodes import VideoWriter
from robo_reward.errors import DatasetError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")
EPISODE_TOPIC = "/robo_reward/episode"


@dataclass(frozen=True)
class View:
    camera: str
    file: Path  # absolute
    start: float = 0.0  # seconds into the file where the episode starts
    end: float | None = None  # where it ends (None: end of file)


@dataclass
class EpisodeRef:
    key: str  # content hash
    source: str  # the mp4 file, dataset directory or MCAP file it came from
    index: int  # episode index inside the source (0 for an mp4 file)
    task: str
    views: list[View]
    duration: float
    seed: int | None = None  # a simulated dataset's reset seed for the episode, where it kept one

    @property
    def name(self) -> str:
        return f"{Path(self.source).name}#{self.index}"


@dataclass
class Catalog:
    episodes: list[EpisodeRef] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # sources or episodes skipped, and why

    def by_key(self) -> dict[str, EpisodeRef]:
        return {e.key: e for e in self.episodes}

    def files(self) -> set[Path]:
        return {v.file for e in self.episodes for v in e.views}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def probe_duration(path: Path) -> float:
    """Duration from the container header (no decoding); DatasetError for files PyAV cannot open."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1e6
            raise DatasetError(f"{path}: video has no duration")
    except DatasetError:
        raise
    except Exception as exc:  # PyAV raises InvalidDataError and friends for corrupt files
        raise DatasetError(f"{path}: cannot open video ({type(exc).__name__}: {exc})") from exc


def scan_video_folder(root: Path, task: str, hashes: dict[str, str] | None = None) -> Catalog:
    """Each video file under `root` is one single-view episode. `hashes` caches file hashes by
    'path:size:mtime_ns' across scans."""
    cat = Catalog()
    files = sorted(p for p in ([root] if root.is_file() else root.rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        cat.problems.append(f"{root}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    for path in tqdm(files, desc=f"scan {root.name}", disable=len(files) < 50, mininterval=1.0):
        path = path.resolve()
        try:
            duration = probe_duration(path)
            stat = path.stat()
            cache_key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
            key = (hashes or {}).get(cache_key) or file_sha256(path)
            if hashes is not None:
                hashes[cache_key] = key
        except (DatasetError, OSError) as exc:
            cat.problems.append(f"{path}: skipped ({exc})" if not isinstance(exc, DatasetError) else str(exc))
            continue
        cat.episodes.append(EpisodeRef(key, str(path), 0, task, [View("video", path)], duration))
    return cat


def _rows_hash(columns: dict[str, np.ndarray], rows: slice) -> str:
    h = hashlib.sha256()
    for name in sorted(columns):
        h.update(name.encode())
        h.update(np.ascontiguousarray(columns[name][rows]).tobytes())
    return h.hexdigest()


def scan_lerobot(root: Path, task: str) -> Catalog:
    """Episodes of a LeRobotDataset; each camera is a view into its (chunked) video file."""
    from robo_reward.data.lerobot_io import open_dataset, read_episode_seeds

    cat = Catalog()
    dataset = open_dataset(root)
    video_keys = list(dataset.meta.video_keys)
    if not video_keys:
        cat.problems.append(f"{root}: dataset has no camera videos")
        return cat
    try:
        seeds = read_episode_seeds(root)
    except DatasetError as exc:  # a stale seed list costs the seeds, not the episodes
        cat.problems.append(f"{exc} (its episodes are listed without seeds)")
        seeds = []
    skip = {"episode_index", "frame_index", "index", "task_index"}
    table = dataset.hf_dataset.with_format("numpy")
    columns = {c: np.asarray(table[c]) for c in table.column_names if c not in skip}
    for i in range(dataset.meta.total_episodes):
        meta = dataset.meta.episodes[i]
        rows = slice(int(meta["dataset_from_index"]), int(meta["dataset_to_index"]))
        views = []
        for k in video_keys:
            path = (dataset.root / dataset.meta.get_video_file_path(i, k)).resolve()
            if not path.is_file():
                cat.problems.append(f"{path}: video of episode {i} missing")
                break
            views.append(View(k.removeprefix("observation.images."), path, float(meta[f"videos/{k}/from_timestamp"]),
                              float(meta[f"videos/{k}/to_timestamp"])))
        else:
            episode_task = meta["tasks"][0] if len(meta["tasks"]) else task
            cat.episodes.append(EpisodeRef(_rows_hash(columns, rows), str(root.resolve()), i, episode_task, views,
                                           views[0].end - views[0].start, seeds[i] if seeds else None))
    return cat


def camera_from_topic(topic: str) -> str:
    parts = [p for p in topic.split("/") if p and p not in ("image_raw", "image", "compressed")]
    return parts[-1] if parts else topic


class _McapEpisode:
    """One running episode of a recording, encoded as its images stream in (memory: one frame)."""

    def __init__(self, index: int, folder: Path):
        self.index, self.folder = index, folder
        self.hash = hashlib.sha256()
        self.clips: dict[str, VideoWriter] = {}
        self.times: dict[str, list[float]] = {}

    def add(self, camera: str, stamp: float, rgb: np.ndarray, raw: bytes) -> None:
        if camera not in self.clips:
            self.clips[camera] = VideoWriter(self.folder / f"{camera}.mp4")
            self.times[camera] = []
        t0 = self.times[camera][0] if self.times[camera] else stamp
        self.clips[camera].add(rgb, round((stamp - t0) * 1000))
        self.times[camera].append(stamp)
        self.hash.update(camera.encode())
        self.hash.update(raw)

    def finish(self, cache: Path) -> dict:
        """Close the clips and move them to cache/<content hash>; returns the manifest entry."""
        for clip in self.clips.values():
            clip.close()
        key = self.hash.hexdigest()
        final = cache / key[:16]
        if final.exists():
            shutil.rmtree(self.folder)
        else:
            self.folder.replace(final)
        durations = []
        for times in self.times.values():
            gap = float(np.median(np.diff(times))) if len(times) > 1 else 0.1
            durations.append(times[-1] - times[0] + max(gap, 1e-3))
        return {"index": self.index, "key": key, "cameras": sorted(self.clips), "duration": max(durations)}


def _read_mcap(path: Path, cache: Path) -> list[dict]:
    """Split a recording into episodes (the /robo_reward/episode status) and encode their cameras."""
    from mcap_ros2.reader import read_ros2_messages

    from robo_reward.runtime.codecs import MessageError, image_to_rgb

    done: list[dict] = []
    current: _McapEpisode | None = None
    work = Path(tempfile.mkdtemp(prefix=".scan-", dir=cache))
    try:
        for m in read_ros2_messages(str(path)):
            topic, msg = m.channel.topic, m.ros_msg
            if topic == EPISODE_TOPIC:
                status = json.loads(msg.data)
                running = int(status["episode"]) if status.get("phase") == "running" else None
                if current is not None and running != current.index:
                    if current.clips:
                        done.append(current.finish(cache))
                    current = None
                if running is not None and current is None:
                    current = _McapEpisode(running, work / str(running))
            elif current is not None and m.schema.name in ("sensor_msgs/msg/Image", "sensor_msgs/Image"):
                try:
                    rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data))
                    current.add(camera_from_topic(topic), msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
                                rgb, bytes(msg.data))
                except (MessageError, DatasetError):
                    continue  # an image the runtime would also have skipped
        if current is not None and current.clips:
            done.append(current.finish(cache))
    except DatasetError:
        raise
    except Exception as exc:  # the mcap reader and decoders raise their own error types for damaged files
        raise DatasetError(f"{path}: cannot read MCAP ({type(exc).__name__}: {exc})") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return done


def scan_mcap(path: Path, task: str, cache: Path) -> Catalog:
    """Episodes of a runtime MCAP recording, each camera encoded once into an H.264 clip (at the
    images' own times) under `cache`; a second scan of the same file only reads its manifest."""
    cat = Catalog()
    path = path.resolve()
    stat = path.stat()
    cache.mkdir(parents=True, exist_ok=True)
    identity = hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    manifest = cache / f"mcap-{identity}.json"
    entries = json.loads(manifest.read_text()) if manifest.is_file() else None
    if entries is None or not all((cache / e["key"][:16] / f"{c}.mp4").is_file() for e in entries
                                  for c in e["cameras"]):
        entries = _read_mcap(path, cache)
        manifest.write_text(json.dumps(entries))
    if not entries:
        cat.problems.append(f"{path}: no camera images recorded during a running episode")
    for e in entries:
        views = [View(c, (cache / e["key"][:16] / f"{c}.mp4").resolve()) for c in e["cameras"]]
        cat.episodes.append(EpisodeRef(e["key"], str(path), e["index"], task, views, e["duration"]))
    return cat


def scan_sources(sources: Sequence[str | Path], cache: Path, task: str = "",
                 hashes: dict[str, str] | None = None) -> Catalog:
    """All episodes of all sources; a source that cannot be read is a problem listed, not a crash."""
    out = Catalog()
    for src in sources:
        path = Path(src)
        try:
            if not path.exists():
                raise DatasetError(f"{path}: no such file or directory")
            if (path / "meta" / "info.json").is_file():
                cat = scan_lerobot(path, task)
            elif path.suffix == ".mcap":
                cat = scan_mcap(path, task, cache)
            else:
                cat = scan_video_folder(path, task, hashes)
        except DatasetError as exc:
            out.problems.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - one unreadable source never stops the others (or the server)
            out.problems.append(f"{path}: skipped ({type(exc).__name__}: {exc})")
            continue
        out.problems += cat.problems
        known = {e.key for e in out.episodes}
        for e in cat.episodes:
            if e.key in known:
                out.problems.append(f"{e.name}: same content as an episode already listed (duplicate skipped)")
            else:
                out.episodes.append(e)
                known.add(e.key)
    return out


def decode_view(view: View, max_frames: int | None = None) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) of one view between its start and end times."""
    import av

    frames = []
    try:
        with av.open(str(view.file)) as container:
            stream = container.streams.video[0]
            if view.start > 0:
                container.seek(int(view.start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
                if t < view.start - 1e-3:
                    continue
                if view.end is not None and t >= view.end - 1e-3:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except Exception as exc:
        raise DatasetError(f"{view.file}: cannot decode ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise DatasetError(f"{view.file}: no frames between {view.start:.3f} s and {view.end} s")
    return np.stack(frames)

