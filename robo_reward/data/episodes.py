"""Episodes for reward models: from an mp4 file (PyAV) or a LeRobotDataset episode (lerobot's decoder).

Both return uint8 RGB frames (T, H, W, 3); a file that cannot be decoded, or decodes to zero
frames, is a DatasetError naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from robo_reward.data.lerobot_io import open_dataset, read_episode_seeds, recorded_frames_render
from robo_reward.envs.observations import IMAGE_PREFIX
from robo_reward.errors import DatasetError
from robo_reward.rewards.base import Episode


def read_video(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """All frames of a video file as uint8 RGB (T, H, W, 3)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: video file not found")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path}: no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except DatasetError:
        raise
    except Exception as exc:  # PyAV raises InvalidDataError, EOFError, ... for corrupt files
        raise DatasetError(f"{path}: cannot decode video ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise DatasetError(f"{path}: video has zero frames")
    return np.stack(frames)


class VideoWriter:
    """H.264 mp4 through PyAV (what LeRobot uses; browsers and ROS tools play it), frame by frame:
    at a fixed rate, or at the times given (variable rate, e.g. from image stamps)."""

    def __init__(self, path: Path, fps: int = 30):
        self.path, self.fps, self.frames = Path(path), fps, 0
        self._container = self._stream = self._size = None
        self._last_ms = -1

    def add(self, frame: np.ndarray, time_ms: int | None = None) -> None:
        import av

        h, w = frame.shape[:2]
        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w", format="mp4")
            x264 = "libx264" in av.codecs_available
            self._stream = self._container.add_stream("libx264" if x264 else "mpeg4", rate=self.fps)
            self._stream.width, self._stream.height, self._stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            if x264:
                self._stream.options = {"x264-params": "log=-1"}  # no encoder statistics on stderr
            if time_ms is not None:
                self._stream.codec_context.time_base = Fraction(1, 1000)
            self._size = (h, w)
        if (h, w) != self._size:
            raise DatasetError(f"{self.path}: a {h}x{w} frame after {self._size[0]}x{self._size[1]} frames")
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: h - h % 2, : w - w % 2]), format="rgb24")
        if time_ms is not None:  # strictly increasing, even for repeated stamps
            image.pts = self._last_ms = max(int(time_ms), self._last_ms + 1)
            image.time_base = Fraction(1, 1000)
        self._container.mux(self._stream.encode(image))
        self.frames += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = None


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int) -> None:
    writer = VideoWriter(path, fps)
    try:
        for frame in frames:
            writer.add(frame)
    finally:
        writer.close()


@dataclass
class LabeledEpisode:
    """An episode plus what the dataset knows about it (the simulator's success check, per step)."""

    episode: Episode
    success: np.ndarray  # (T,) bool: success after each step
    source: str
    score: float | None = None  # a 1-5 end-of-episode label (RoboReward rubric), when one exists
    render: dict | None = None  # how the simulator drew its frames (RenderSettings); None: a camera or video
    seed: int | None = None  # the simulator's reset seed, where the dataset kept it: its initial state

    @property
    def succeeded(self) -> bool:
        return bool(self.success.any())

    @property
    def frame_success(self) -> np.ndarray:
        """(T,) bool: which frames show success. Frame t+1 shows the outcome of step t, so frame t takes
        step t-1's label (frame 0: not yet)."""
        return np.concatenate([[False], np.asarray(self.success, bool)[:-1]])

    def until_success(self) -> LabeledEpisode:
        """The episode up to the first frame that shows success (frame t+1 shows step t's outcome);
        unchanged when it never succeeds. Demos that ran on past success end where the task was done."""
        hits = np.flatnonzero(self.success)
        if not len(hits):
            return self
        end = min(self.episode.length, int(hits[0]) + 2)
        return LabeledEpisode(self.episode.clip(end), self.success[:end], self.source, self.score, self.render,
                              self.seed)


def camera_keys(dataset) -> list[str]:
    return [k.removeprefix(IMAGE_PREFIX) for k in dataset.meta.video_keys]


def load_episode(root: str | Path, episode_index: int, cameras: Sequence[str] | None = None,
                 dataset=None) -> LabeledEpisode:
    """Decode one episode of a LeRobotDataset (all cameras unless `cameras` is given)."""
    from lerobot.datasets.video_utils import decode_video_frames

    dataset = dataset or open_dataset(root)
    available = camera_keys(dataset)
    if not available:
        raise DatasetError(f"{root}: dataset has no camera videos (record with --cameras)")
    cameras = list(cameras or available)
    missing = [c for c in cameras if c not in available]
    if missing:
        raise DatasetError(f"{root}: cameras {missing} not in dataset; it has {available}")
    if not 0 <= episode_index < dataset.meta.total_episodes:
        raise DatasetError(f"{root}: episode {episode_index} out of range (dataset has {dataset.meta.total_episodes})")
    meta = dataset.meta.episodes[episode_index]
    rows = dataset.hf_dataset.with_format("numpy")[meta["dataset_from_index"]:meta["dataset_to_index"]]
    timestamps = [float(t) for t in np.asarray(rows["timestamp"]).reshape(-1)]
    frames = {}
    for cam in cameras:
        key = IMAGE_PREFIX + cam
        path = dataset.root / dataset.meta.get_video_file_path(episode_index, key)
        start = meta[f"videos/{key}/from_timestamp"]
        try:
            decoded = decode_video_frames(path, [start + t for t in timestamps], dataset.tolerance_s)  # default backend
        except Exception as exc:
            raise DatasetError(f"{path}: cannot decode episode {episode_index} ({type(exc).__name__}: {exc})") from exc
        frames[cam] = (decoded.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    state = np.asarray(rows["observation.state"], np.float32) if "observation.state" in rows else None
    task = meta["tasks"][0] if len(meta["tasks"]) else ""
    success = np.asarray(rows["next.success"]).reshape(-1).astype(bool) if "next.success" in rows \
        else np.zeros(len(timestamps), bool)
    seeds = read_episode_seeds(root)
    return LabeledEpisode(Episode(frames, task, state), success, f"{root}#{episode_index}",
                          render=recorded_frames_render(root), seed=seeds[episode_index] if seeds else None)


def load_episodes(root: str | Path, cameras: Sequence[str] | None = None,
                  indices: Sequence[int] | None = None) -> list[LabeledEpisode]:
    dataset = open_dataset(root)
    indices = range(dataset.meta.total_episodes) if indices is None else indices
    return [load_episode(root, i, cameras, dataset) for i in indices]
