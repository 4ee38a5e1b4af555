"""The residual's exploration noise, drawn one episode at a time.

White noise (ResFiT: a fresh Gaussian every step) averages out within a few steps: a base that stalls
with its gripper a few centimetres over the cube is never pushed anywhere by it. Colored noise with
power ~ 1/f^beta over the episode (pink at beta=1, Eberhard et al. 2023, "Pink Noise Is All You
Need") has the same per-step spread but drifts, so an episode explores a direction for a while.
Held pushes go further (temporally-extended epsilon-greedy, Dabney et al. 2021, "ez-greedy"): now and
then a random residual anywhere inside the bound is added for a few steps running, enough to carry a
stalled hand a few centimetres down, across, or to close it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robo_reward.rl.networks import residual_bounds

# the block of steps one colored draw covers where the env does not say how long its episodes are
DEFAULT_HORIZON = 1000


def colored_noise(beta: float, steps: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """(steps, dims) Gaussian noise with power spectral density ~ 1/f^beta along the steps and unit
    variance per sample in expectation (beta 0: white). Random amplitudes and phases on the rfft
    frequencies (Timmer & Koenig 1995), the lowest nonzero frequency standing in for f=0."""
    freqs = np.fft.rfftfreq(steps)
    freqs[0] = freqs[1] if steps > 1 else 1.0
    amplitude = freqs ** (-beta / 2.0)
    real = rng.normal(size=(dims, freqs.size)) * amplitude
    imag = rng.normal(size=(dims, freqs.size)) * amplitude
    imag[:, 0] = 0.0  # the mean and (even length) the Nyquist term of a real signal are real
    if steps % 2 == 0:
        imag[:, -1] = 0.0
        real[:, -1] *= np.sqrt(2.0)
    real[:, 0] *= np.sqrt(2.0)
    # a sample's variance is sum |A_k|^2 * 2/n^2 over the half spectrum (the real terms counted once)
    weights = np.full(freqs.size, 2.0)
    weights[0] = 1.0
    if steps % 2 == 0:
        weights[-1] = 1.0
    sigma = np.sqrt(np.sum(weights * amplitude**2)) * np.sqrt(2.0) / steps
    signal = np.fft.irfft(real + 1j * imag, n=steps, axis=-1) / sigma
    return signal.T


def episode_horizon(env: gym.Env) -> int:
    """The env's time limit in steps (a simulated or a robot env says it), else DEFAULT_HORIZON."""
    try:
        return int(env.get_wrapper_attr("max_episode_steps"))
    except AttributeError:
        return DEFAULT_HORIZON


class ExplorationNoise:
    """Per-step noise of std `std` for an `act_dim` action, white (beta 0) or colored over each episode.

    White noise is one `rng.normal` per step, as before colored noise existed, so a white run draws the
    same numbers it always did. A colored episode draws its whole sequence at its start (a new block if
    it outlasts `horizon`): a run checkpointed between episodes resumes exactly.
    """

    def __init__(self, rng: np.random.Generator, act_dim: int, std: float = 0.05):
        self.rng, self.act_dim = rng, act_dim
        self.start_episode(std, 0.0, DEFAULT_HORIZON)

    def start_episode(self, std: float, beta: float, horizon: int, push_prob: float = 0.0, push_steps: int = 1,
                      push_bound: np.ndarray | float = 0.0) -> None:
        """`push_prob`: the chance at each step without a push of starting one: a residual drawn uniformly
        within +-`push_bound` (per dimension), held for 1..`push_steps` steps (uniform), on top of the noise."""
        self.std, self.beta, self.horizon = float(std), float(beta), max(int(horizon), 1)
        self.push_prob, self.push_steps = float(push_prob), max(int(push_steps), 1)
        self.push_bound = np.broadcast_to(np.asarray(push_bound, dtype=np.float64), (self.act_dim,))
        self._block = np.empty((0, self.act_dim))
        self._step = 0
        self._push, self._push_left = np.zeros(self.act_dim), 0

    def start_episode_for(self, cfg: object, horizon: int) -> None:
        """A new episode's noise as a learner config says; a learner that samples its own actions
        (lerobot's SAC) has no exploration_noise field and gets none. Pushes span the residual's bound."""
        push_prob = getattr(cfg, "exploration_push_prob", 0.0)
        bound = residual_bounds(cfg.residual_scale, self.act_dim) if push_prob > 0.0 else 0.0
        self.start_episode(getattr(cfg, "exploration_noise", 0.0), getattr(cfg, "exploration_noise_beta", 0.0),
                           horizon, push_prob, getattr(cfg, "exploration_push_steps", 1), bound)

    def __call__(self) -> np.ndarray:
        noise = self._noise()
        if self.push_prob == 0.0:  # no extra draws: runs recorded before pushes existed replay exactly
            return noise
        if self._push_left == 0 and self.rng.random() < self.push_prob:
            self._push = self.rng.uniform(-self.push_bound, self.push_bound)
            self._push_left = int(self.rng.integers(1, self.push_steps + 1))
        if self._push_left == 0:
            return noise
        self._push_left -= 1
        return noise + self._push

    def _noise(self) -> np.ndarray:
        if self.beta == 0.0:
            return self.rng.normal(0.0, self.std, self.act_dim)
        if self._step >= len(self._block):
            self._block = self.std * colored_noise(self.beta, self.horizon, self.act_dim, self.rng)
            self._step = 0
        self._step += 1
        return self._block[self._step - 1]
