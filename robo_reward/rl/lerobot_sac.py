"""LeRobot's own SAC — the learner of its HIL-SERL stack — behind the loop's learner interface: lerobot's
GaussianActorPolicy (actor), SACAlgorithm (critics, targets, temperature, losses, optimizers, gradient
clipping, the update schedule) and its pre-processor (min-max observation normalization), driven by
this project's env loop, replay buffers and half-demonstration batches. It acts on its own: the base's
action is not used (the peer the residual learner is measured against).

lerobot 0.6 split SAC into lerobot.policies.gaussian_actor and lerobot.rl.algorithms.sac; one
`SACAlgorithm.update` is what lerobot's learner runs per optimization step (lerobot/rl/trainer.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robo_reward.rl.buffers import NStepReplayBuffer, sample_mixed
from robo_reward.rl.exploration import ExplorationNoise
from robo_reward.rl.learner_config import PlainConfig
from robo_reward.rl.networks import OBS_STD_FLOOR

STATE = "observation.state"  # the flat state (robot + object) as one lerobot STATE feature


@dataclass
class LeRobotSACConfig(PlainConfig):
    """lerobot's SACAlgorithmConfig defaults unless a comment says otherwise."""

    gamma: float = 0.99  # lerobot `discount`
    n_step: int = 1  # lerobot's critic target backs up one step
    batch_size: int = 256  # lerobot's HIL-SERL example configs
    utd_ratio: int = 1
    num_critics: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    temperature_init: float = 1e-2  # lerobot's HIL-SERL guide recommends 1e-2 (its default is 1.0)
    tau: float = 0.005  # lerobot `critic_target_update_weight`
    demo_fraction: float = 0.5  # ours, as the residual learner: half demonstrations per batch (RLPD)
    learning_starts: int = 1000  # ours, as the residual learner (lerobot: online_step_before_learning 100)
    obs_std_floor: float = OBS_STD_FLOOR  # smallest half-range of the min-max normalization
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_step != 1:
            raise ValueError(f"lerobot's SAC backs up one step: n_step must be 1, got {self.n_step}")
        self.check_ranges(("utd_ratio", "batch_size", "num_critics"))


class LeRobotSAC:
    kind = "lerobot-sac"

    def __init__(self, obs_dim: int, act_dim: int, cfg: LeRobotSACConfig, device: torch.device | str) -> None:
        from lerobot.configs.types import FeatureType, PolicyFeature
        from lerobot.policies.gaussian_actor import GaussianActorConfig, GaussianActorPolicy
        from lerobot.rl.algorithms.sac import SACAlgorithm, SACAlgorithmConfig

        self.obs_dim, self.act_dim, self.cfg = obs_dim, act_dim, cfg
        self.device = torch.device(device)
        self.stats = {"min": [-1.0] * obs_dim, "max": [1.0] * obs_dim}  # identity until fitted
        policy_cfg = GaussianActorConfig(
            input_features={STATE: PolicyFeature(type=FeatureType.STATE, shape=(obs_dim,))},
            output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(act_dim,))},
            device=str(self.device), storage_device="cpu", vision_encoder_name=None)
        # lerobot draws from torch's global generator; the learner keeps its own stream (exact resume)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.policy = GaussianActorPolicy(policy_cfg)
            algorithm_cfg = SACAlgorithmConfig.from_policy_config(policy_cfg)
            for ours, theirs in (("gamma", "discount"), ("utd_ratio", "utd_ratio"), ("num_critics", "num_critics"),
                                 ("actor_lr", "actor_lr"), ("critic_lr", "critic_lr"),
                                 ("temperature_lr", "temperature_lr"), ("temperature_init", "temperature_init"),
                                 ("tau", "critic_target_update_weight")):
                setattr(algorithm_cfg, theirs, getattr(cfg, ours))
            self.algorithm = SACAlgorithm(self.policy, algorithm_cfg)
            self.optimizers = self.algorithm.make_optimizers_and_scheduler()
            self.rng_state = torch.get_rng_state()
        self._make_preprocessor()

    def _make_preprocessor(self) -> None:
        from lerobot.policies import make_pre_post_processors

        stats = {STATE: {k: torch.tensor(v, dtype=torch.float32) for k, v in self.stats.items()},
                 "action": {"min": torch.full((self.act_dim,), -1.0), "max": torch.full((self.act_dim,), 1.0)}}
        self.preprocessor, _ = make_pre_post_processors(policy_cfg=self.policy.config, dataset_stats=stats)

    @contextlib.contextmanager
    def _own_rng(self, keep: bool = True):
        """lerobot samples from torch's global generators: inside, they are the learner's own CPU stream
        (saved back when `keep`); the caller's are restored after. Exact resume holds on CPU; on CUDA the
        global CUDA generator is isolated but not checkpointed."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.rng_state)
            yield
            if keep:
                self.rng_state = torch.get_rng_state()

    def fit_observations(self, observations: np.ndarray) -> None:
        """Min-max statistics of the demonstrations' states (lerobot's normalization for SAC), each
        half-range at least `obs_std_floor` so a dimension that never moved does not blow up."""
        observations = np.asarray(observations, dtype=np.float64).reshape(-1, self.obs_dim)
        centre = (observations.max(0) + observations.min(0)) / 2
        half = np.maximum((observations.max(0) - observations.min(0)) / 2, self.cfg.obs_std_floor)
        self.stats = {"min": (centre - half).tolist(), "max": (centre + half).tolist()}
        self._make_preprocessor()

    def _observations(self, obs: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        return self.preprocessor.process_observation({STATE: torch.as_tensor(obs, dtype=torch.float32)})

    @torch.no_grad()
    def act(self, obs: np.ndarray, base_action: np.ndarray, explore: ExplorationNoise | None = None) -> np.ndarray:
        """SAC's own action for (obs_dim,) or (B, obs_dim): a sample of its own while exploring (it draws
        nothing from `explore`), else tanh(mean)."""
        sampling = explore is not None
        single = np.ndim(obs) == 1
        nobs = self._observations(obs)
        # the greedy action still draws a sample inside lerobot's forward: evaluation must not move the stream
        with self._own_rng(keep=sampling):
            action = self.policy.select_action(nobs) if sampling else torch.tanh(self.policy.forward(nobs)["action_mean"])
        action = action.cpu().numpy().astype(np.float32)
        return action[0] if single and action.ndim == 2 else action

    def train_step(self, demo_buffer: NStepReplayBuffer | None, online_buffer: NStepReplayBuffer,
                   rng: np.random.Generator) -> dict[str, float]:
        """One `SACAlgorithm.update` (it draws utd_ratio batches) on half-demonstration batches."""

        def batches():
            while True:
                b = sample_mixed(demo_buffer, online_buffer, self.cfg.batch_size, rng, self.cfg.demo_fraction,
                                 self.device)
                yield {"state": self._observations(b["obs"]), "action": b["action"], "reward": b["n_step_return"],
                       "next_state": self._observations(b["next_obs"]), "done": (b["discount"] == 0).float(),
                       "truncated": torch.zeros_like(b["discount"]), "complementary_info": None}

        with self._own_rng():
            stats = self.algorithm.update(batches())
        return {k: float(v) for k, v in stats.to_log_dict().items()}

    @torch.no_grad()
    def q_estimate(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        act = torch.as_tensor(np.asarray(action), dtype=torch.float32, device=self.device)
        return self.algorithm.critic_ensemble(self._observations(obs), act).mean(0).cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        """Everything for an exact resume, loadable with `torch.load(path, weights_only=True)`."""
        return {"kind": self.kind, "config": self.cfg.to_dict(), "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "stats": self.stats, "policy": self.policy.state_dict(),
                "critic_ensemble": self.algorithm.critic_ensemble.state_dict(),
                "critic_target": self.algorithm.critic_target.state_dict(),
                "log_alpha": self.algorithm.log_alpha.detach().clone(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "optimization_step": self.algorithm.optimization_step, "rng_state": self.rng_state}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device | str) -> LeRobotSAC:
        learner = cls(state["obs_dim"], state["act_dim"], LeRobotSACConfig.from_dict(state["config"]), device)
        learner.stats = state["stats"]
        learner._make_preprocessor()
        learner.policy.load_state_dict(state["policy"])
        learner.algorithm.critic_ensemble.load_state_dict(state["critic_ensemble"])
        learner.algorithm.critic_target.load_state_dict(state["critic_target"])
        learner.algorithm.log_alpha.data.copy_(state["log_alpha"])
        for name, optimizer in learner.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        learner.algorithm._optimization_step = int(state["optimization_step"])  # lerobot has no setter
        learner.rng_state = state["rng_state"].cpu()  # map_location may have moved it
        return learner
