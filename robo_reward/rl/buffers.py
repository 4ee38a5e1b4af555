"""n-step replay storage for the residual learner, and the half-demo / half-online batch mix.

Each stored item carries the base policy's action at both ends of the n-step window, because
the residual actor (and its target) is a function of (obs, base_action).

A window only ever spans consecutive steps of one episode: steps carry their episode id and step
index, and a step that does not continue the pending ones (another episode, or a step the learner
never received — a transition dropped for want of a reward) first closes the pending window as a
truncation, bootstrapping from the last observation it really has.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np
import torch

from robo_reward.rl.transition import Transition

_STORED_KEYS = ("obs", "base_action", "action", "n_step_return", "next_obs", "next_base_action", "discount")
_PENDING_KEYS = ("obs", "base_action", "action", "reward", "next_obs", "next_base_action")
_PENDING_TAGS = ("episode", "step", "to_demo")  # int64 columns in the state dict


class _PendingStep(NamedTuple):
    """One raw transition of the current episode that has not been turned into n-step items yet."""

    obs: np.ndarray
    base_action: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    next_base_action: np.ndarray
    episode: int = -1  # -1: the caller does not track episodes (no continuity check)
    step: int = -1
    to_demo: bool = False  # the item starting here goes to `demo_sink` (an operator intervention)


class NStepReplayBuffer:
    """Circular numpy buffer of n-step transitions built from one-step `add` calls.

    Stored item i: obs_t, base_action_t, action_t, R = sum_{j<k} gamma^j r_{t+j},
    next_obs = obs_{t+k}, next_base_action at obs_{t+k}, discount = gamma^k * (1 - terminated),
    where k = n_step, or fewer when the episode ended first. A truncated episode keeps its
    bootstrap (discount gamma^k); a terminated one does not (discount 0).

    `demo_sink`: items whose first step was an operator intervention are written there (the demo
    buffer, HIL-SERL) while their window is assembled here, so an intervention never cuts a window.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, n_step: int = 3, gamma: float = 0.99) -> None:
        if capacity <= 0 or n_step <= 0:
            raise ValueError(f"capacity and n_step must be positive, got {capacity} and {n_step}")
        self.capacity = capacity
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.n_step = n_step
        self.gamma = gamma
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.base_action = np.zeros((capacity, act_dim), dtype=np.float32)
        self.action = np.zeros((capacity, act_dim), dtype=np.float32)
        self.n_step_return = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_base_action = np.zeros((capacity, act_dim), dtype=np.float32)
        self.discount = np.zeros(capacity, dtype=np.float32)
        self.write_index = 0
        self.size = 0
        self.kept = 0  # items 0..kept-1 are never overwritten (`keep_stored`)
        self.pending: deque[_PendingStep] = deque()
        self.demo_sink: NStepReplayBuffer | None = None

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        base_action: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        next_base_action: np.ndarray,
        terminated: bool,
        truncated: bool,
        episode: int | None = None,
        step: int | None = None,
        to_demo: bool = False,
    ) -> None:
        """Record one environment step; emits n-step items as soon as their window is known.

        With `episode` and `step` given, a step that does not directly follow the pending ones
        first closes their window (a gap or an unfinished episode: truncation, with bootstrap)."""
        if (episode is None) != (step is None):
            raise ValueError("give both episode and step, or neither")
        episode, step = (-1, -1) if episode is None else (int(episode), int(step))
        if self.pending and episode >= 0:
            last = self.pending[-1]
            if (last.episode, last.step + 1) != (episode, step):
                self.close_window()
        if to_demo and self.demo_sink is None:
            raise ValueError("an intervention step needs a demo_sink to store its items in")
        self.pending.append(
            _PendingStep(
                np.asarray(obs, dtype=np.float32).copy(),
                np.asarray(base_action, dtype=np.float32).copy(),
                np.asarray(action, dtype=np.float32).copy(),
                float(reward),
                np.asarray(next_obs, dtype=np.float32).copy(),
                np.asarray(next_base_action, dtype=np.float32).copy(),
                episode,
                step,
                bool(to_demo),
            )
        )
        if terminated or truncated:
            while self.pending:
                self._emit_oldest(terminated=bool(terminated))
                self.pending.popleft()
        elif len(self.pending) == self.n_step:
            self._emit_oldest(terminated=False)
            self.pending.popleft()

    def add_transition(self, t: Transition, reward: float) -> None:
        """Record an actor's transition with the reward the learner gave it (its RewardRule)."""
        self.add(t.obs, t.base_action, t.action, reward, t.next_obs,
                 t.next_base_action, terminated=t.terminated, truncated=t.truncated, episode=t.episode,
                 step=t.step, to_demo=t.intervention)

    def close_window(self) -> None:
        """Emit every pending step as a truncated window (bootstrapping from the last observation):
        for a gap in the step sequence, or an episode that will receive no more steps."""
        while self.pending:
            self._emit_oldest(terminated=False)
            self.pending.popleft()

    def _emit_oldest(self, terminated: bool) -> None:
        """Write the item that starts at the oldest pending step and spans all pending steps."""
        n_step_return = 0.0
        for k, step in enumerate(self.pending):
            n_step_return += self.gamma**k * step.reward
        horizon = len(self.pending)
        first, last = self.pending[0], self.pending[-1]
        target = self.demo_sink if first.to_demo else self
        target._store(first.obs, first.base_action, first.action, n_step_return, last.next_obs,
                      last.next_base_action, 0.0 if terminated else self.gamma**horizon)

    def keep_stored(self) -> None:
        """The items stored so far stay: the ring wraps round to the slot after them. A robot run's
        demonstration buffer keeps its demonstrations this way once operator interventions fill the
        room left for them (the oldest interventions go first)."""
        self.kept = self.size

    def _store(self, obs, base_action, action, n_step_return, next_obs, next_base_action, discount) -> None:
        if self.kept >= self.capacity:
            raise ValueError(f"replay buffer holds {self.kept} kept items in {self.capacity} slots: no room for more")
        i = self.write_index
        self.obs[i] = obs
        self.base_action[i] = base_action
        self.action[i] = action
        self.n_step_return[i] = n_step_return
        self.next_obs[i] = next_obs
        self.next_base_action[i] = next_base_action
        self.discount[i] = discount
        self.write_index = i + 1 if i + 1 < self.capacity else self.kept
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniform sample with replacement of stored n-step items."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        indices = rng.integers(0, self.size, size=batch_size)
        return {key: getattr(self, key)[indices] for key in _STORED_KEYS}

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """Everything needed to resume bit-identically, as plain arrays/ints (np.savez-able)."""
        state: dict[str, np.ndarray | int] = {
            "capacity": self.capacity,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "n_step": self.n_step,
            "gamma": np.asarray(self.gamma, dtype=np.float64),
            "write_index": self.write_index,
            "size": self.size,
            "kept": self.kept,
        }
        for key in _STORED_KEYS:
            state[key] = getattr(self, key)[: self.size].copy()
        for key in _PENDING_KEYS:
            values = [getattr(step, key) for step in self.pending]
            if key == "reward":
                state["pending_reward"] = np.asarray(values, dtype=np.float64)
            else:
                width = self.obs_dim if key in ("obs", "next_obs") else self.act_dim
                state[f"pending_{key}"] = np.asarray(values, dtype=np.float32).reshape(len(values), width)
        for key in _PENDING_TAGS:
            state[f"pending_{key}"] = np.asarray([getattr(step, key) for step in self.pending], dtype=np.int64)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray | int]) -> "NStepReplayBuffer":
        """Rebuild a buffer with the checkpoint's own layout (capacity, dims, n-step, gamma)."""
        buffer = cls(int(state["capacity"]), int(state["obs_dim"]), int(state["act_dim"]), int(state["n_step"]),
                     float(state["gamma"]))
        buffer.load_state_dict(state)
        return buffer

    def load_state_dict(self, state: dict[str, np.ndarray | int]) -> None:
        """Restore from `state_dict()` output (or its np.load round trip); layout must match."""
        layout = {"capacity": self.capacity, "obs_dim": self.obs_dim, "act_dim": self.act_dim, "n_step": self.n_step}
        for key, expected in layout.items():
            if int(state[key]) != expected:
                raise ValueError(f"replay buffer {key} mismatch: checkpoint {int(state[key])}, buffer {expected}")
        if float(state["gamma"]) != self.gamma:
            raise ValueError(f"replay buffer gamma mismatch: checkpoint {float(state['gamma'])}, buffer {self.gamma}")
        self.size = int(state["size"])
        self.write_index = int(state["write_index"])
        self.kept = int(state.get("kept", 0))  # checkpoints from before `keep_stored`: nothing kept
        for key in _STORED_KEYS:
            getattr(self, key)[: self.size] = state[key]
        pending_columns = [np.asarray(state[f"pending_{key}"]) for key in _PENDING_KEYS]
        count = len(pending_columns[0])
        # checkpoints from before episode tracking have no tags: their pending steps are untracked
        defaults = {"episode": -1, "step": -1, "to_demo": 0}
        tags = [np.asarray(state.get(f"pending_{key}", np.full(count, defaults[key])), dtype=np.int64)
                for key in _PENDING_TAGS]
        self.pending = deque(
            _PendingStep(obs.copy(), base.copy(), act.copy(), float(rew), nxt.copy(), nxt_base.copy(),
                         int(episode), int(step), bool(to_demo))
            for obs, base, act, rew, nxt, nxt_base, episode, step, to_demo in zip(*pending_columns, *tags)
        )


def sample_mixed(
    demo: NStepReplayBuffer | None,
    online: NStepReplayBuffer,
    batch_size: int,
    rng: np.random.Generator,
    demo_fraction: float = 0.5,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """A training batch: `demo_fraction` demonstrations, the rest online (ResFiT: half/half).

    Falls back to all-demo while the online buffer is empty and all-online without demos.
    `is_demo` marks each row's source.
    """
    has_demo = demo is not None and len(demo) > 0
    has_online = len(online) > 0
    if not has_demo and not has_online:
        raise ValueError("both replay buffers are empty")
    if not has_online:
        num_demo = batch_size
    elif not has_demo:
        num_demo = 0
    else:
        num_demo = int(round(batch_size * demo_fraction))
    parts = []
    if num_demo > 0:
        parts.append(demo.sample(num_demo, rng))
    if batch_size - num_demo > 0:
        parts.append(online.sample(batch_size - num_demo, rng))
    batch = {
        key: torch.as_tensor(np.concatenate([part[key] for part in parts]), dtype=torch.float32, device=device)
        for key in _STORED_KEYS
    }
    is_demo = np.zeros(batch_size, dtype=bool)
    is_demo[:num_demo] = True
    batch["is_demo"] = torch.as_tensor(is_demo, device=device)
    return batch
