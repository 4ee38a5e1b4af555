"""Residual TD3 with a REDQ-style critic ensemble: the ResFiT learner.

A frozen base policy proposes `a_base`; the learner adds a small bounded residual and
trains it off-policy (n-step TD, UTD ~4, half-demo batches) on the executed action (or, with
`learn_commanded_action`, the commanded one).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robo_reward.rl.buffers import NStepReplayBuffer, sample_mixed
from robo_reward.rl.exploration import ExplorationNoise
from robo_reward.rl.learner_config import PlainConfig
from robo_reward.rl.networks import OBS_STD_FLOOR, EnsembleCritic, ObsNormalizer, ResidualActor, residual_bounds


@dataclass
class ResidualTD3Config(PlainConfig):
    """Hyperparameters; defaults follow ResFiT unless a comment says otherwise."""

    gamma: float = 0.99  # ResFiT
    n_step: int = 3  # ResFiT (5 in some runs); n > 1 was essential in their ablation
    tau: float = 0.005  # ResFiT Polyak rate (TD3 default)
    utd_ratio: int = 4  # ResFiT: critic updates per env step; UTD 4 captured most of the gain
    batch_size: int = 256  # TD3/REDQ standard; ResFiT does not change it
    num_q: int = 10  # ResFiT / REDQ ensemble size
    num_target_min: int = 2  # REDQ: TD target = min over a random pair of target heads
    critic_lr: float = 1e-4  # ResFiT configs
    actor_lr: float = 1e-6  # ResFiT configs (tiny, stays near the base); our sim benchmarks may override
    # ResFiT default (0.2 on harder bimanual tasks). A list: one bound per action dimension — e.g. the
    # gripper's whole range, where a base that stalls with its gripper open is beyond a 0.1 correction
    residual_scale: float | tuple[float, ...] = 0.1
    critic_hidden: tuple[int, ...] = (256, 256)  # ours: a common TD3 size; ResFiT's exact widths unverified
    actor_hidden: tuple[int, ...] = (256, 256)  # ours, as critic_hidden
    policy_delay: int = 2  # TD3: one actor (and actor-target) update per 2 critic updates
    target_noise: float = 0.2  # TD3 smoothing std, as a fraction of residual_scale, added to the target residual
    target_noise_clip: float = 0.5  # TD3 smoothing clip, as a fraction of residual_scale
    # ResFiT "~0.05 on the residual": absolute std in [-1, 1] action units; the noisy residual is
    # clipped to +-residual_scale so the critic's data stays where the actor can act.
    exploration_noise: float = 0.05
    # ours: 0 is ResFiT's white noise; 1 pink (power ~ 1/f over the episode; Eberhard et al. 2023), same std
    exploration_noise_beta: float = 0.0
    # ours, off by default: chance per step of a held push, a random residual within the bound kept for
    # 1..exploration_push_steps steps (ez-greedy, Dabney et al. 2021), to move a base that stalls
    exploration_push_prob: float = 0.0
    exploration_push_steps: int = 10
    demo_fraction: float = 0.5  # ResFiT: half demonstrations, half online transitions per batch
    # ResFiT warms the critic up before the actor moves; 1000 is our choice (count not published).
    critic_warmup_updates: int = 1000
    # Env steps with base action + exploration noise before any update (read by the training loop).
    learning_starts: int = 1000
    obs_std_floor: float = OBS_STD_FLOOR  # ours: see rl/networks.py
    # ours: weight of mean((residual / bound)^2) in the actor's loss, pulling the residual toward the base
    # where the critic's gain does not pay for it (as TD3+BC's term pulls toward the data); ResFiT: none
    residual_penalty: float = 0.0
    # ours, off by default: transitions carry the commanded action where a joint limit guard rewrote it
    # (an operator's intervention still the executed one), so the critic values what the actor commands,
    # with the guard inside the dynamics; the executed action leaves it extrapolating to commands the guard
    # always rewrites, which the actor then climbs (docs/BENCHMARKS.md, "The joint limit guard on PickPlaceCan")
    learn_commanded_action: bool = False
    weight_decay: float = 0.0  # Adam L2 on both networks; ResFiT uses none
    max_grad_norm: float | None = None  # optional global-norm gradient clip; off in ResFiT
    seed: int = 0  # seeds network init and the learner's own noise/head-choice generator

    def __post_init__(self) -> None:
        self.critic_hidden = tuple(int(h) for h in self.critic_hidden)
        self.actor_hidden = tuple(int(h) for h in self.actor_hidden)
        if isinstance(self.residual_scale, (list, tuple)):
            self.residual_scale = tuple(float(x) for x in self.residual_scale)
        if not all(0.0 < x <= 2.0 for x in np.atleast_1d(self.residual_scale)):
            raise ValueError(f"residual_scale must be in (0, 2] (per action dimension), got {self.residual_scale}")
        self.check_ranges(("n_step", "utd_ratio", "batch_size", "num_q", "num_target_min", "policy_delay"))
        if self.num_target_min > self.num_q:
            raise ValueError(f"num_target_min ({self.num_target_min}) exceeds num_q ({self.num_q})")
        if self.residual_penalty < 0.0:
            raise ValueError(f"residual_penalty must be >= 0, got {self.residual_penalty}")
        if self.exploration_noise < 0.0:
            raise ValueError(f"exploration_noise is a std and must be >= 0, got {self.exploration_noise}")
        if not 0.0 <= self.exploration_push_prob <= 1.0:
            raise ValueError(f"exploration_push_prob is a probability, got {self.exploration_push_prob}")
        if self.exploration_push_steps < 1:
            raise ValueError(f"exploration_push_steps must be >= 1, got {self.exploration_push_steps}")
        if not 0.0 <= self.exploration_noise_beta <= 2.0:
            raise ValueError("exploration_noise_beta must be in [0, 2] (0 white, 1 pink, 2 red), "
                             f"got {self.exploration_noise_beta}")


class ResidualTD3:
    """The learner: normalizer, residual actor, Q ensemble, their targets and optimizers."""

    kind = "residual-td3"

    def __init__(self, obs_dim: int, act_dim: int, cfg: ResidualTD3Config, device: torch.device | str) -> None:
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.cfg = cfg
        self.device = torch.device(device)
        # Network init from cfg.seed without disturbing the caller's global torch RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.obs_normalizer = ObsNormalizer(obs_dim, cfg.obs_std_floor)
            self.actor = ResidualActor(obs_dim, act_dim, cfg.actor_hidden, cfg.residual_scale)
            self.critic = EnsembleCritic(obs_dim, act_dim, cfg.num_q, cfg.critic_hidden)
        self.obs_normalizer.to(self.device)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        fused = True if self.device.type == "cuda" else None  # one kernel per step on a GPU; CPU: torch's default
        self.actor_optimizer = torch.optim.Adam(
            self.actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.weight_decay, fused=fused
        )
        self.critic_optimizer = torch.optim.Adam(
            self.critic.parameters(), lr=cfg.critic_lr, weight_decay=cfg.weight_decay, fused=fused
        )
        self.num_updates = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed)

    def act(self, obs: np.ndarray, base_action: np.ndarray, explore: ExplorationNoise | None = None) -> np.ndarray:
        """Executed action clip(base + residual [+ one draw of `explore`], -1, 1) for (obs_dim,) or
        (B, obs_dim) input; None: the greedy action."""
        noise = None if explore is None else explore()
        return residual_action(self.obs_normalizer, self.actor, self.cfg, obs, base_action, noise)

    def fit_observations(self, observations: np.ndarray) -> None:
        """Fix the observation normalizer on the demonstrations' states."""
        self.obs_normalizer.fit(observations)

    @torch.no_grad()
    def q_estimate(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The critic's value of (B, obs_dim) states and (B, act_dim) actions, mean over heads:
        set against realised returns it shows over- or under-estimation."""
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        act_t = torch.as_tensor(np.asarray(action), dtype=torch.float32, device=self.device)
        return self.critic(self.obs_normalizer(obs_t), act_t).mean(0).cpu().numpy()

    def actor_tensors(self) -> dict[str, torch.Tensor]:
        """What a deployed actor needs (normalizer + residual actor), e.g. to ship to a robot."""
        return {**{f"obs_normalizer.{k}": v for k, v in self.obs_normalizer.state_dict().items()},
                **{f"actor.{k}": v for k, v in self.actor.state_dict().items()}}

    def update(self, batch: dict[str, torch.Tensor], update_actor: bool) -> dict[str, torch.Tensor]:
        """One critic step on all heads, optionally one actor step, then Polyak target updates.

        The critic target moves every update; the actor target only when the actor does (TD3). Metrics
        stay 0-d tensors on the device: reading each one would stall a GPU at every update.
        """
        cfg, scale = self.cfg, self.actor.scale
        self.actor.train()
        obs = self.obs_normalizer(batch["obs"])
        next_obs = self.obs_normalizer(batch["next_obs"])
        with torch.no_grad():
            next_residual = self.actor_target(next_obs, batch["next_base_action"])
            noise_clip = cfg.target_noise_clip * scale
            noise = torch.randn(next_residual.shape, generator=self.generator, device=self.device)
            noise = torch.clamp(noise * cfg.target_noise * scale, -noise_clip, noise_clip)
            next_residual = torch.clamp(next_residual + noise, -scale, scale)
            next_action = (batch["next_base_action"] + next_residual).clamp(-1.0, 1.0)
            target_heads = torch.randperm(cfg.num_q, generator=self.generator, device=self.device)[: cfg.num_target_min]
            next_q = self.critic_target(next_obs, next_action, target_heads).min(dim=0).values
            td_target = batch["n_step_return"] + batch["discount"] * next_q

        q = self.critic(obs, batch["action"])  # (num_q, B), one batched call
        critic_loss = F.mse_loss(q, td_target.expand_as(q), reduction="none").mean(dim=1).sum()
        self._step(self.critic_optimizer, critic_loss, self.critic.parameters())
        metrics = {
            "critic_loss": critic_loss.detach() / cfg.num_q,  # mean per-head TD loss
            "q_mean": q.detach().mean(),
            "td_target_mean": td_target.mean(),
        }

        if update_actor:
            residual = self.actor(obs, batch["base_action"])
            action = (batch["base_action"] + residual).clamp(-1.0, 1.0)
            self.critic.requires_grad_(False)  # gradients flow through the critic, not into it
            actor_loss = -self.critic(obs, action).mean() + cfg.residual_penalty * (residual / scale).square().mean()
            self.critic.requires_grad_(True)
            self._step(self.actor_optimizer, actor_loss, self.actor.parameters())
            _polyak(self.actor, self.actor_target, cfg.tau)
            metrics |= {"actor_loss": actor_loss.detach(), "residual_abs_mean": residual.detach().abs().mean()}

        _polyak(self.critic, self.critic_target, cfg.tau)
        self.num_updates += 1
        return metrics

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: Iterable[torch.nn.Parameter]) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        optimizer.step()

    def train_step(
        self,
        demo_buffer: NStepReplayBuffer | None,
        online_buffer: NStepReplayBuffer,
        rng: np.random.Generator,
    ) -> dict[str, float]:
        """cfg.utd_ratio updates for one env step; their mean metrics, read from the device once.

        The actor joins once critic warm-up is over, on every policy_delay-th update.
        """
        history: dict[str, list[torch.Tensor]] = {}
        for _ in range(self.cfg.utd_ratio):
            batch = sample_mixed(
                demo_buffer, online_buffer, self.cfg.batch_size, rng, self.cfg.demo_fraction, self.device
            )
            update_actor = (
                self.num_updates >= self.cfg.critic_warmup_updates and self.num_updates % self.cfg.policy_delay == 0
            )
            for key, value in self.update(batch, update_actor).items():
                history.setdefault(key, []).append(value)
        means = torch.stack([torch.stack(values).mean() for values in history.values()]).tolist()
        return dict(zip(history, means))

    def state_dict(self) -> dict[str, Any]:
        """Everything for an exact resume, loadable with `torch.load(path, weights_only=True)`."""
        return {
            "kind": self.kind,
            "config": self.cfg.to_dict(),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "obs_normalizer": self.obs_normalizer.state_dict(),
            "actor": self.actor.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "num_updates": self.num_updates,
            "generator_device": self.device.type,
            "generator_state": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint made by a learner with the same dimensions and config."""
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(
                f"checkpoint dims (obs {state['obs_dim']}, act {state['act_dim']}) != learner "
                f"(obs {self.obs_dim}, act {self.act_dim})"
            )
        if ResidualTD3Config.from_dict(state["config"]).to_dict() != self.cfg.to_dict():  # older: fewer keys
            raise ValueError("checkpoint config differs from this learner's; use ResidualTD3.from_state_dict")
        self.obs_normalizer.load_state_dict(state["obs_normalizer"])
        self.actor.load_state_dict(state["actor"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.num_updates = int(state["num_updates"])
        if state["generator_device"] == self.device.type:
            self.generator.set_state(state["generator_state"].cpu())  # map_location may have moved it
        else:
            # CPU and CUDA generator states are not interchangeable; networks still load exactly.
            warnings.warn(
                f"checkpoint generator is for {state['generator_device']}, learner runs on {self.device.type}: "
                "target noise after resume will differ from the original run",
                stacklevel=2,
            )

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device | str) -> ResidualTD3:
        """Rebuild a learner from its checkpoint alone (config and dims included)."""
        learner = cls(state["obs_dim"], state["act_dim"], ResidualTD3Config.from_dict(state["config"]), device)
        learner.load_state_dict(state)
        return learner


@torch.no_grad()
def _polyak(source: torch.nn.Module, target: torch.nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, for every parameter."""
    for target_param, source_param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(source_param, tau)


@torch.no_grad()
def residual_action(obs_normalizer: ObsNormalizer, actor: ResidualActor, cfg: ResidualTD3Config, obs: np.ndarray,
                    base_action: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
    """clip(base + clip(residual [+ exploration noise], +-residual scale), -1, 1); shared by the learner
    and by a robot's actor process that only holds the normalizer and the actor."""
    device = obs_normalizer.mean.device
    single = np.ndim(obs) == 1
    obs_t = torch.as_tensor(np.atleast_2d(obs), dtype=torch.float32, device=device)
    base_t = torch.as_tensor(np.atleast_2d(base_action), dtype=torch.float32, device=device)
    actor.eval()
    residual = actor(obs_normalizer(obs_t), base_t).cpu().numpy()
    if noise is not None:
        bound = residual_bounds(cfg.residual_scale, residual.shape[-1])
        residual = np.clip(residual + noise, -bound, bound)
    action = np.clip(base_t.cpu().numpy() + residual, -1.0, 1.0).astype(np.float32)
    return action[0] if single else action
