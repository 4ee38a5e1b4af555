"""LeRobot's reward classifier (lerobot.rewards.classifier, HIL-SERL's image success detector) as a
success source: a checkpoint directory as lerobot saves one (config.json of type reward_classifier,
model.safetensors, classifier_preprocessor.json; e.g. `lerobot-train --reward_model.type=
reward_classifier`'s `pretrained_model`) scores camera frames through lerobot's own model and
pre-processor wherever a success classifier goes: `--reward success-classifier --reward-model DIR`,
`reward eval`, the reward server.

Its frozen image encoder is a transformers model that the config names (`model_name`; HIL-SERL uses a
ResNet-10): taken from `DIR/encoder`, else `model_name` as a local directory, else the Hugging Face hub
cache; nothing is downloaded. An encoder that brings its own Python code (`auto_map` in its
config.json) loads only with ROBO_REWARD_TRUST_MODEL_CODE=1, because loading it runs that code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from robo_reward.device import pick_device, serving_precision
from robo_reward.envs.observations import IMAGE_PREFIX
from robo_reward.rewards.base import FrameRewardModel, RewardModelError
from robo_reward.rewards.classifier import CLASSIFIER_KIND
from robo_reward.rewards.vision import to_tensor

CONFIG_FILE = "config.json"
CLASSIFIER_TYPE = "reward_classifier"
PREPROCESSOR_FILE = "classifier_preprocessor.json"
TRUST_CODE_ENV = "ROBO_REWARD_TRUST_MODEL_CODE"


def is_lerobot_classifier(path: Path) -> bool:
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("type") == CLASSIFIER_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def _encoder_dir(path: Path, model_name: str) -> Path:
    from robo_reward.rewards.registry import hub_cache_dir

    for candidate in (path / "encoder", path / model_name):  # an absolute model_name stays itself
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    try:
        return hub_cache_dir(model_name)
    except RewardModelError:
        raise RewardModelError(
            f"{path}: the classifier's image encoder {model_name!r} is not here: put that transformers model "
            f"directory at {path / 'encoder'} or in the Hugging Face hub cache (nothing is downloaded)") from None


def _check_no_code(encoder: Path) -> None:
    config = json.loads((encoder / CONFIG_FILE).read_text())
    if "auto_map" in config and os.environ.get(TRUST_CODE_ENV) != "1":
        raise RewardModelError(
            f"{encoder}: the encoder brings its own Python code ({CONFIG_FILE} has auto_map), which loading would "
            f"run; set {TRUST_CODE_ENV}=1 if you trust that directory")


def _check_weights_match(weights: Path, model: torch.nn.Module) -> None:
    """lerobot loads a classifier non-strictly (a wrong checkpoint would keep random weights with only a
    log line): every tensor of the model must come from the file. Tensors shared under several names
    (the per-camera encoders share one backbone) are saved once; BatchNorm's num_batches_tracked
    counters play no part in inference."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        saved = set(f.keys())
    names_of: dict[int, set[str]] = {}
    for name, tensor in model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            names_of.setdefault(tensor.data_ptr(), set()).add(name)
    missing = sorted(min(names) for names in names_of.values() if not names & saved)
    known = set().union(*names_of.values())
    extra = sorted(k for k in saved - known if not k.endswith("num_batches_tracked"))
    if missing or extra:
        raise RewardModelError(f"{weights}: does not match the classifier its config describes "
                               f"(missing {missing[:5]}, unexpected {extra[:5]})")


class LeRobotRewardClassifier(FrameRewardModel):
    name = CLASSIFIER_KIND  # a success classifier like ours: sparse reward, no shaping by default

    def __init__(self, path: str | Path, device: str = "auto"):
        from lerobot.configs.rewards import RewardModelConfig
        from lerobot.processor import PolicyProcessorPipeline
        from lerobot.rewards.classifier.modeling_classifier import Classifier

        path = Path(path)
        self.device = pick_device(device)
        try:
            config = RewardModelConfig.from_pretrained(path)  # the subclass by the file's `type`
        except Exception as exc:  # draccus and json raise their own types
            raise RewardModelError(f"{path / CONFIG_FILE}: not a readable LeRobot reward classifier config "
                                   f"({type(exc).__name__}: {exc})") from exc
        if config.num_classes != 2:
            raise RewardModelError(f"{path / CONFIG_FILE}: num_classes is {config.num_classes}; a success source "
                                   "needs a binary classifier (num_classes 2)")
        encoder = _encoder_dir(path, config.model_name)
        _check_no_code(encoder)
        config.model_name, config.device = str(encoder), self.device.type
        try:
            self.model = Classifier.from_pretrained(path, config=config).eval()
            _check_weights_match(path / "model.safetensors", self.model)
            self.preprocess = PolicyProcessorPipeline.from_pretrained(
                path, config_filename=PREPROCESSOR_FILE, overrides={"device_processor": {"device": self.device.type}})
        except Exception as exc:  # safetensors, transformers and lerobot raise their own types
            raise RewardModelError(f"{path}: cannot load the LeRobot reward classifier "
                                   f"({type(exc).__name__}: {exc})") from exc
        self.image_keys = [k for k in config.input_features if k.startswith(IMAGE_PREFIX)]
        self.cameras = tuple(k.removeprefix(IMAGE_PREFIX) for k in self.image_keys)
        shapes = {tuple(config.input_features[k].shape[1:]) for k in self.image_keys}
        if len(shapes) != 1 or len(self.image_keys) != config.num_cameras:
            raise RewardModelError(f"{path / CONFIG_FILE}: expected num_cameras ({config.num_cameras}) image inputs of "
                                   f"one size, got {self.image_keys} with sizes {sorted(shapes)}")
        self.render_size = shapes.pop()

    @torch.inference_mode()
    def score_frames(self, frames, task, state):
        images = to_tensor(frames, self.render_size, self.device)  # (N, V, 3, H, W) in [0, 1]
        batch = self.preprocess({key: images[:, i] for i, key in enumerate(self.image_keys)})
        with serving_precision(self.device):
            prob = self.model.predict([batch[key] for key in self.image_keys]).probabilities.float()
        prob = prob.cpu().numpy().reshape(-1)
        return prob, prob, (prob >= self.success_threshold).astype(np.float32)


def load_lerobot_classifier(path: str | Path, device: str = "auto") -> LeRobotRewardClassifier:
    return LeRobotRewardClassifier(path, device)
