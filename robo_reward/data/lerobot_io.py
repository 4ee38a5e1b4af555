"""Record episodes as a LeRobotDataset through lerobot's own API, and load them back.

Every frame holds the observation at time t, the action taken at t, and the outcome of that
action in `next.reward`, `next.success`, `next.done` (LeRobot's naming). The task text is the
dataset's per-frame task. The environment spec used to record (task, robot, cameras, horizon)
is kept beside the data in `robo_reward_env.json` so a policy trained on it knows its env.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.envs.observations import IMAGE_PREFIX, OBSERVATION_FORMAT, observation_format_mismatch
from robo_reward.envs.rendering import RENDER_KEY, spec_with_render
from robo_reward.envs.scenes import spec_with_scene
from robo_reward.errors import DatasetError

ENV_SPEC_FILE = "robo_reward_env.json"
EPISODE_SEEDS_KEY = "episode_seeds"  # in ENV_SPEC_FILE: the reset seed of each saved episode (simulation)
REQUIRED_COLUMNS = ("observation.state", "action", "next.reward", "next.success", "next.done", "episode_index")


def features_for(observation_space: gym.spaces.Dict, action_dim: int, use_videos: bool = True) -> dict[str, dict]:
    """LeRobot feature spec matching an env's observation dict (images as videos by default)."""
    features: dict[str, dict] = {}
    for key, space in observation_space.spaces.items():
        if key.startswith(IMAGE_PREFIX):
            features[key] = {
                "dtype": "video" if use_videos else "image",
                "shape": tuple(space.shape),
                "names": ["height", "width", "channels"],
            }
        else:
            features[key] = {"dtype": "float32", "shape": tuple(space.shape), "names": None}
    features["action"] = {"dtype": "float32", "shape": (action_dim,), "names": None}
    features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    features["next.success"] = {"dtype": "bool", "shape": (1,), "names": None}
    features["next.done"] = {"dtype": "bool", "shape": (1,), "names": None}
    return features


@contextlib.contextmanager
def keep_scheduling_policy():
    """The SVT-AV1 encoder behind lerobot's video writing switches the calling thread to SCHED_FIFO
    priority 99 when it may (root): everything that thread runs or starts afterwards — training,
    ROS nodes, child processes — would then be real-time and could starve the machine. Put it back."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


class EpisodeRecorder:
    """Writes a new LeRobotDataset at `root`. Use as a context manager: on an exception the
    half-written dataset is removed; on success it is finalized (parquet footers written)."""

    def __init__(
        self,
        root: str | Path,
        fps: int,
        observation_space: gym.spaces.Dict,
        action_dim: int,
        env_spec: Mapping[str, Any],
        robot_type: str | None = None,
        overwrite: bool = False,
    ):
        import datasets
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        datasets.disable_progress_bars()  # one "Map" bar per saved episode drowns the real progress bar
        self.root = Path(root)
        if self.root.exists():
            if not overwrite:
                raise DatasetError(f"{self.root} already exists; pass --overwrite to replace it")
            shutil.rmtree(self.root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._features = features_for(observation_space, action_dim)
        self._dataset = LeRobotDataset.create(
            repo_id=f"local/{self.root.name}",
            fps=fps,
            features=self._features,
            root=self.root,
            robot_type=robot_type,
            use_videos=True,
        )
        self._spec = {**env_spec, "observation_format": OBSERVATION_FORMAT}
        (self.root / ENV_SPEC_FILE).write_text(json.dumps(self._spec, indent=2))
        self.episodes = 0
        self.episode_seeds: list[int] = []
        self.seeds_dropped = False

    def add_step(self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: float, success: bool,
                 done: bool, task: str) -> None:
        frame = {key: np.asarray(obs[key]) for key in self._features if key in obs}
        frame["action"] = np.asarray(action, dtype=np.float32)
        frame["next.reward"] = np.array([reward], dtype=np.float32)
        frame["next.success"] = np.array([success], dtype=bool)
        frame["next.done"] = np.array([done], dtype=bool)
        frame["task"] = task
        self._dataset.add_frame(frame)

    def save_episode(self, seed: int | None = None, drop_seeds_on_mismatch: bool = False) -> str | None:
        """`seed`: the episode's reset seed (simulation), kept so that a policy trained on this dataset
        knows which initial states it has seen (`eval` warns when it is scored on them); give it for
        every episode or for none. `drop_seeds_on_mismatch`: a recorder of a robot's topics cannot redo an
        episode, so one that breaks that rule is saved all the same and the dataset keeps no seeds; the
        note returned (once) says so."""
        note = None
        if self.episodes and not self.seeds_dropped and (seed is None) != (not self.episode_seeds):
            note = (f"{self.root}: episode {self.episodes} has {'no' if seed is None else 'a'} seed, the earlier "
                    "ones the other way")
            if not drop_seeds_on_mismatch:
                raise DatasetError(f"{note}: give every episode's seed or none")
            note += "; the dataset keeps no seeds"
            self.episode_seeds.clear()
            self.seeds_dropped = True
        with warnings.catch_warnings(), keep_scheduling_policy():
            # lerobot's statistics histogram converts our bool success/done columns to uint8, loudly
            warnings.filterwarnings("ignore", message="Converting input from bool", category=RuntimeWarning)
            # lerobot's parallel encoding starts a process pool per episode: ~5 s from a worker process
            # for a few small videos that encode in ~0.1 s each one after the other
            self._dataset.save_episode(parallel_encoding=False)
        self.episodes += 1
        if seed is not None and not self.seeds_dropped:
            self.episode_seeds.append(int(seed))
        return note

    def discard_episode(self) -> None:
        self._dataset.clear_episode_buffer()

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._dataset.finalize()
            if self.episode_seeds:
                spec = {**self._spec, EPISODE_SEEDS_KEY: self.episode_seeds}
                (self.root / ENV_SPEC_FILE).write_text(json.dumps(spec, indent=2))
        else:
            try:
                self._dataset.finalize()
            finally:
                shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Demonstration:
    """One recorded episode, ready for BC and the residual learner's demo buffer.

    observations has T+1 entries: the frame after the last action is not stored in LeRobot
    format, so the last observation is repeated (the final transition is terminal on success;
    on failure it is a truncation that bootstraps from the last state)."""

    observations: list[dict[str, np.ndarray]]
    actions: np.ndarray
    rewards: np.ndarray
    successes: np.ndarray
    task: str
    episode_index: int

    @property
    def success(self) -> bool:
        return bool(self.successes.any())


def _spec_file(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(spec, dict):
        raise DatasetError(f"{path}: expected a JSON object (the env spec), got {type(spec).__name__}")
    return spec


def recorded_frames_render(root: str | Path) -> dict | None:
    """How a dataset's camera frames were drawn (None: a real camera, or no spec recorded): what a
    reward model trained on them records. Unlike read_env_spec, any observation format will do."""
    path = Path(root) / ENV_SPEC_FILE
    if not path.is_file():
        return None
    try:
        return spec_with_render(_spec_file(path), str(path)).get(RENDER_KEY)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None


def read_env_spec(root: str | Path) -> dict[str, Any]:
    path = Path(root) / ENV_SPEC_FILE
    if not path.is_file():
        raise DatasetError(f"{root}: missing {ENV_SPEC_FILE} (was it recorded with `robo-reward demos collect`?)")
    spec = _spec_file(path)
    mismatch = observation_format_mismatch(spec)
    if mismatch:
        raise DatasetError(f"{root} was recorded with {mismatch}: record it again with this version "
                           "(`robo-reward demos collect` in simulation, the recorder node on a robot)")
    spec.pop(EPISODE_SEEDS_KEY, None)  # what was recorded, not the env a policy acts in
    try:
        return spec_with_render(spec_with_scene(spec), str(path))
    except ValueError as exc:
        raise DatasetError(str(exc)) from None


def read_episode_seeds(root: str | Path) -> list[int]:
    """The reset seeds of a simulated dataset's episodes, in episode order ([] for a robot's recording,
    or one recorded before seeds were kept)."""
    path = Path(root) / ENV_SPEC_FILE
    seeds = _spec_file(path).get(EPISODE_SEEDS_KEY, []) if path.is_file() else []
    if not (isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise DatasetError(f"{path}: {EPISODE_SEEDS_KEY} must be a list of integers, got {seeds!r}")
    if seeds:  # a dataset edited by other tools (episodes deleted or merged) keeps a stale list
        info = Path(root) / "meta" / "info.json"
        try:
            episodes = json.loads(info.read_text())["total_episodes"]
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise DatasetError(f"{info}: cannot read the dataset's episode count ({exc})") from None
        if episodes != len(seeds):
            raise DatasetError(f"{path}: {EPISODE_SEEDS_KEY} lists {len(seeds)} seeds for {episodes} episodes "
                               f"(was the dataset edited?): correct the list or remove it")
    return seeds


def dataset_features(root: str | Path) -> dict[str, tuple[int, ...]]:
    """The shape of every observation key and of the action in a LeRobotDataset (meta/info.json),
    images as (H, W, 3): what a base policy must fit."""
    path = Path(root) / "meta" / "info.json"
    try:
        features = json.loads(path.read_text())["features"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise DatasetError(f"{path}: cannot read the dataset's features ({exc})") from None
    return {k: tuple(f["shape"]) for k, f in features.items() if k.startswith("observation.") or k == "action"}


def check_format_version(root: Path) -> None:
    """lerobot 0.4 and later read LeRobotDataset v3.x only: an older dataset is refused in one line that
    says which format it is and the command that converts it in place (the original kept as DIR_old)."""
    import importlib.metadata

    info = root / "meta" / "info.json"
    try:
        version = str(json.loads(info.read_text())["codebase_version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{info}: no readable codebase_version ({type(exc).__name__}: {exc})") from None
    if not version.startswith("v3."):
        raise DatasetError(
            f"{root}: LeRobotDataset format {version}, written by lerobot before 0.4; lerobot "
            f"{importlib.metadata.version('lerobot')} reads v3.x. Convert it in place (the original is kept as "
            f"{root.name}_old): python -m lerobot.scripts.convert_dataset_v21_to_v30 --repo-id=local/{root.name} "
            f"--root={root} --push-to-hub=false")


def open_dataset(root: str | Path):
    """Open a local LeRobotDataset with lerobot's loader, turning its failures into DatasetError."""
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise DatasetError(f"{root} is not a LeRobotDataset: meta/info.json is missing")
    check_format_version(root)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local dataset must never trigger a hub download
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    try:
        return LeRobotDataset(repo_id=f"local/{root.name}", root=root)
    except Exception as exc:  # lerobot/pyarrow raise many types for corrupt files
        raise DatasetError(f"{root}: cannot load LeRobotDataset ({type(exc).__name__}: {exc})") from exc


def load_demonstrations(root: str | Path) -> list[Demonstration]:
    """State-only episodes (no video decoding) from a LeRobotDataset written by EpisodeRecorder."""
    dataset = open_dataset(root)
    columns = dataset.hf_dataset.column_names
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(f"{root}: dataset lacks required columns {missing}; it has {columns}")
    state_keys = [k for k in ("observation.state", "observation.environment_state") if k in columns]
    try:
        table = dataset.hf_dataset.with_format("numpy").select_columns([*state_keys, *REQUIRED_COLUMNS[1:], "task_index"])
        data = {c: np.asarray(table[c]) for c in table.column_names}
    except Exception as exc:
        raise DatasetError(f"{root}: cannot read columns ({type(exc).__name__}: {exc})") from exc
    tasks = {int(i): t for t, i in zip(dataset.meta.tasks.index, dataset.meta.tasks["task_index"])}
    demos = []
    for ep in np.unique(data["episode_index"]):
        rows = np.flatnonzero(data["episode_index"] == ep)
        states = {k: data[k][rows].astype(np.float32) for k in state_keys}
        if any(not np.all(np.isfinite(v)) for v in states.values()):
            raise DatasetError(f"{root}: episode {int(ep)} contains non-finite observations")
        obs = [{k: v[t] for k, v in states.items()} for t in range(len(rows))]
        obs.append(obs[-1])
        demos.append(
            Demonstration(
                observations=obs,
                actions=data["action"][rows].astype(np.float32),
                rewards=data["next.reward"][rows].reshape(-1).astype(np.float32),
                successes=data["next.success"][rows].reshape(-1).astype(bool),
                task=tasks.get(int(data["task_index"][rows[0]]), ""),
                episode_index=int(ep),
            )
        )
    if not demos:
        raise DatasetError(f"{root}: dataset has no episodes")
    return demos
