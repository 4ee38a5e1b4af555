"""Generative vision-language reward models, behind two interchangeable backends.

- RoboReward-style end-of-episode progress: ~16 frames (always the last), the 1-5 rubric, the
  answer parsed from "ANSWER: <score>", reward r = (y - 1) / 4.
- Robo-Dopamine GRM-style hops: reference start/goal + before/after views, parsed from
  "<score>+NN%</score>", plugged into the process-reward fusion as a HopPredictor.

Backends: `TransformersVLM` (a local Qwen2.5-VL / Qwen3-VL class checkpoint through transformers'
Auto classes) and `OpenAIChatVLM` (any OpenAI-compatible chat endpoint — how vLLM serves a model on
the robot's GPU) with timeouts, retries and a concurrency limit. A reply without a valid score is an
explicit "no reward" result carrying the reply; it is never turned into a 0.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from robo_reward.device import pick_device
from robo_reward.rewards.base import (
    Episode,
    NoRewardError,
    RewardModelError,
    RewardResult,
    StepScore,
    check_task,
    single_frame,
    subsample_indices,
)


class VLMBackend(Protocol):
    def generate(self, images: Sequence[np.ndarray], prompt: str) -> str:
        """Reply text for uint8 RGB images (H, W, 3) followed by the prompt; NoRewardError on transport failure."""


# --- prompts and parsing --------------------------------------------------------------------------

ROBOREWARD_RUBRIC = """You are shown frames from a robot episode, in time order; the last frame is the end of the episode.
Task: {task}
Judge ONLY the final state against the task and give an end-of-episode progress score:
1 - no goal-relevant change
2 - minimal progress
3 - partial completion (a major requirement is violated)
4 - near completion (one minor requirement missed)
5 - all requirements met
Reply with a short reason, then a final line "ANSWER: <score>"."""

GRM_HOP_PROMPT = """Images: reference START state, reference GOAL state, then the BEFORE state and the AFTER state \
({views} camera view(s) each).
Task: {task}
How much progress toward the goal happened from BEFORE to AFTER? Positive: the percentage of the remaining \
progress gained; negative: the percentage of the achieved progress lost.
Answer exactly as <score>+NN%</score> or <score>-NN%</score>."""

_ANSWER = re.compile(r"ANSWER:\s*\**\s*([1-5])(?![0-9.])")
_HOP = re.compile(r"<score>\s*([+-]?\d+(?:\.\d+)?)\s*%\s*</score>")


def parse_progress_score(reply: str) -> int:
    """The last "ANSWER: y" with y in 1..5; anything else raises NoRewardError quoting the reply."""
    reply = reply or ""
    matches = _ANSWER.findall(reply)
    if not matches:
        raise NoRewardError(f"reply has no 'ANSWER: <1-5>': {reply[:200]!r}")
    return int(matches[-1])


def parse_hop(reply: str) -> float:
    reply = reply or ""
    matches = _HOP.findall(reply)
    if not matches:
        raise NoRewardError(f"reply has no '<score>+NN%</score>': {reply[:200]!r}")
    value = float(matches[-1]) / 100.0
    if not -1.0 <= value <= 1.0:
        raise NoRewardError(f"hop {matches[-1]}% outside [-100%, 100%]: {reply[:200]!r}")
    return value


# --- backends -------------------------------------------------------------------------------------

def png_data_url(image: np.ndarray) -> str:
    import cv2

    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise NoRewardError(f"cannot encode image of shape {image.shape} as PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.tobytes()).decode()


@dataclass
class OpenAIChatConfig:
    base_url: str = "http://127.0.0.1:8000/v1"  # vLLM's default OpenAI-compatible server
    model: str = "robo-reward"
    api_key: str | None = None  # sent as a Bearer token when set
    timeout_s: float = 30.0
    retries: int = 2  # extra attempts after a timeout, connection error or 5xx
    backoff_s: float = 0.5
    max_concurrency: int = 4
    max_tokens: int = 64  # RoboReward: allow >= 24 new tokens
    temperature: float = 0.0


class OpenAIChatVLM:
    def __init__(self, config: OpenAIChatConfig = OpenAIChatConfig()):
        import httpx

        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.Client(base_url=config.base_url.rstrip("/"), timeout=config.timeout_s, headers=headers)
        self._slots = threading.BoundedSemaphore(config.max_concurrency)

    def generate(self, images, prompt):
        import httpx

        content = [{"type": "image_url", "image_url": {"url": png_data_url(im)}} for im in images]
        content.append({"type": "text", "text": prompt})
        body = {"model": self.config.model, "messages": [{"role": "user", "content": content}],
                "max_tokens": self.config.max_tokens, "temperature": self.config.temperature}
        last = "no attempt"
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(self.config.backoff_s * 2 ** (attempt - 1))
            try:
                with self._slots:
                    response = self._client.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                last = f"timed out after {self.config.timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"cannot reach {self.config.base_url} ({type(exc).__name__}: {exc})"
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code != 200:  # 4xx: retrying will not help
                raise NoRewardError(f"endpoint refused the request: HTTP {response.status_code}: {response.text[:200]}")
            try:
                return response.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise NoRewardError(f"endpoint reply is not a chat completion: {response.text[:200]!r}") from exc
        raise NoRewardError(f"endpoint {self.config.base_url}: {last} ({self.config.retries + 1} attempts)")

    def close(self) -> None:
        self._client.close()


class TransformersVLM:
    """A local vision-language checkpoint through transformers' Auto classes (no hub access needed:
    `local_files_only` unless allow_download). fp16 on CUDA, fp32 on CPU; greedy decoding."""

    def __init__(self, path: str | Path, device: str = "auto", max_new_tokens: int = 64, allow_download: bool = False):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = pick_device(device)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        try:
            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=not allow_download)
            self.model = AutoModelForImageTextToText.from_pretrained(
                str(path), local_files_only=not allow_download, dtype=dtype).to(self.device).eval()
        except Exception as exc:
            raise RewardModelError(f"cannot load vision-language model {path!r}: {type(exc).__name__}: {exc}. "
                                   "Pass a local checkpoint directory (config, weights, processor files).") from exc
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one generate at a time on one model

    def generate(self, images, prompt):
        import torch
        from PIL import Image

        messages = [{"role": "user", "content": [*({"type": "image"} for _ in images),
                                                 {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=[Image.fromarray(np.asarray(im)) for im in images],
                                return_tensors="pt").to(self.device)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]


# --- reward models over a backend -----------------------------------------------------------------

@dataclass
class VLMProgressConfig:
    camera: str = "agentview"
    frames: int = 16  # RoboReward subsamples ~16 frames, always keeping the last
    stream_every: int = 10  # online: re-score the episode so far every N steps, hold the value between
    success_score: int = 5
    max_workers: int = 4  # concurrent episodes in score_episodes (the backend also limits concurrency)


class VLMProgressReward:
    """RoboReward-style end-of-episode progress. Per-step progress is the score of the episode so far
    where it was computed (the last step in `score_episode`) and held constant in between."""

    name = "vlm"

    def __init__(self, backend: VLMBackend, config: VLMProgressConfig = VLMProgressConfig()):
        self.backend, self.config = backend, config
        self.cameras = (config.camera,)

    def score_frames(self, frames: np.ndarray, task: str) -> int:
        idx = subsample_indices(len(frames), self.config.frames)
        reply = self.backend.generate([frames[i] for i in idx], ROBOREWARD_RUBRIC.format(task=task))
        return parse_progress_score(reply)

    def score_episode(self, episode: Episode) -> RewardResult:
        frames = episode.select(self.cameras)[0]
        try:
            y = self.score_frames(frames, episode.task)
        except NoRewardError as exc:
            return RewardResult.no_reward(str(exc))
        r = (y - 1) / 4.0
        progress = np.zeros(episode.length, np.float32)
        progress[-1] = r
        success = np.zeros(episode.length, bool)
        success[-1] = y >= self.config.success_score
        return RewardResult(progress=progress, success=success, reward=progress.copy(), score=float(y))

    def score_episodes(self, episodes: Sequence[Episode]) -> list[RewardResult]:
        with ThreadPoolExecutor(self.config.max_workers) as pool:
            return list(pool.map(self.score_episode, episodes))

    def stream(self, task: str) -> "_VLMStream":
        return _VLMStream(self, check_task(task))


class _VLMStream:
    def __init__(self, model: VLMProgressReward, task: str):
        self.model, self.task = model, task
        self.frames: list[np.ndarray] = []
        self.value = 0.0

    def step(self, frames, state=None) -> StepScore:
        self.frames.append(single_frame(frames, self.model.cameras)[self.model.cameras[0]][0])
        if len(self.frames) % self.model.config.stream_every == 0:
            try:
                y = self.model.score_frames(np.stack(self.frames), self.task)
            except NoRewardError as exc:
                return StepScore(self.value, False, 0.0, ok=False, error=str(exc))
            self.value = (y - 1) / 4.0
        return StepScore(self.value, self.value >= 1.0, self.value)

    def reset(self, frames, state=None) -> StepScore:
        self.frames, self.value = [], 0.0
        return self.step(frames, state)


class VLMHopPredictor:
    """GRM-style hop predictions through a VLM backend, as a HopPredictor for ProcessReward."""

    def __init__(self, backend: VLMBackend, cameras: Sequence[str], start_frames: dict[str, np.ndarray],
                 goal_frames: dict[str, np.ndarray], max_workers: int = 4):
        self.backend, self.cameras, self.max_workers = backend, tuple(cameras), max_workers
        self.references = [np.asarray(start_frames[c]) for c in self.cameras] + \
                          [np.asarray(goal_frames[c]) for c in self.cameras]

    def hops(self, before, after, task):
        prompt = GRM_HOP_PROMPT.format(task=task, views=len(self.cameras))

        def one(i: int) -> float:
            images = [*self.references, *(b[i] for b in before), *(a[i] for a in after)]
            return parse_hop(self.backend.generate(images, prompt))

        with ThreadPoolExecutor(self.max_workers) as pool:
            return np.asarray(list(pool.map(one, range(len(before[0])))), np.float32)
