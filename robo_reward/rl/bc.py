"""A small MLP behaviour-cloning base policy: fast to train, for tests and quick experiments.

With `chunk` > 1 it predicts the next `chunk` actions from each state and executes their temporal
ensemble, as ACT does (Zhao et al. 2023): a Markov regression averages a demonstrator's "wait here" and
"go on" at the same state into a standstill it never leaves; a chunk made a few steps earlier still
carries the "go on". On the bench plans' 20 noisy demonstrations, chunk 8 against 1, 100 tuning episodes
per BC seed: Panda Lift 55% vs 43%, PickPlaceCan 48% vs 11%, GR1 Lift 87% vs 67% (docs/BENCHMARKS.md).

With `members` > 1 it is the mean of that many such MLPs, member k trained exactly as the single base of
BC seed `seed * members + k` would be (its own initialisation and minibatches): a small MLP cloned from a
few dozen noisy demonstrations swings by 10-15 points with its BC seed (Can, 50 demonstrations: 86 / 71 /
79% on the report episodes), and the mean of the members' chunks averages that luck out. ("Exactly": at
the same torch thread count — the order of CPU float sums, and so the trained weights, depend on it.)
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.func import functional_call, stack_module_state
from tqdm.auto import tqdm

from robo_reward.device import pick_device
from robo_reward.envs.observations import flat_state
from robo_reward.errors import PolicyError
from robo_reward.rl.networks import OBS_STD_FLOOR, ObsNormalizer, mlp
from robo_reward.rl.policies import checked_action, register_policy_kind, write_policy_manifest

if TYPE_CHECKING:  # the dataset reader pulls in lerobot; a loaded policy needs none of it
    from robo_reward.data.lerobot_io import Demonstration

WEIGHTS_FILE = "model.safetensors"


@dataclass
class MLPBCConfig:
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    steps: int = 4000
    seed: int = 0
    obs_std_floor: float = OBS_STD_FLOOR
    # actions predicted per state (1: a plain Markov policy). 8: the best of 1 / 4 / 8 on Lift, Can and GR1
    # (docs/BENCHMARKS.md "A base with action chunks"); a Markov base stalls where a demonstrator paused
    chunk: int = 8
    # ACT's temporal ensembling: of the chunks covering a step, the i-th after the oldest weighs
    # exp(-decay * i); ACT's default 0.01 (nearly an even average of every prediction for the step)
    ensemble_decay: float = 0.01
    # MLPs whose predictions are averaged; member k is the single base of BC seed `seed * members + k`, so the
    # members of different seeds never overlap. 1: a single base, as before
    members: int = 1


class MLPBCNet(nn.Module):
    """Normalized flat state -> the next `chunk` tanh-squashed actions in [-1, 1], flattened."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], obs_std_floor: float = OBS_STD_FLOOR,
                 chunk: int = 1):
        super().__init__()
        self.normalizer = ObsNormalizer(obs_dim, obs_std_floor)
        self.net = mlp(obs_dim, hidden, act_dim * chunk)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(self.normalizer(obs)))


def mean_of_members(members: Sequence[nn.Module]) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the members' mean output, in one batched forward (torch.func's model ensembling), not a loop.
    (A single base skips it: it acts bit for bit as it did before members existed.)"""
    params, buffers = stack_module_state(list(members))
    template = copy.deepcopy(members[0]).to("meta")
    forward = torch.vmap(lambda p, b, x: functional_call(template, (p, b), (x,)), in_dims=(0, 0, None))
    return lambda x: forward(params, buffers, x).mean(0)


class MLPBCPolicy:
    kind = "mlp"

    def __init__(self, members: Sequence[MLPBCNet], config: MLPBCConfig, device: torch.device):
        if len(members) != config.members:
            raise ValueError(f"{len(members)} member networks for a config of {config.members} members")
        self.members = [net.to(device).eval() for net in members]
        self.config = config
        self.device = device
        self.act_dim = members[0].net[-1].out_features // config.chunk
        self.predict = self.members[0] if config.members == 1 else mean_of_members(self.members)
        self.chunks: deque[np.ndarray] = deque(maxlen=config.chunk)  # the chunks covering this step, oldest first
        self.ensemble_weights = np.exp(-config.ensemble_decay * np.arange(config.chunk))

    def reset(self, seed: int | None = None) -> None:
        self.chunks.clear()

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        x = torch.as_tensor(flat_state(obs), device=self.device).unsqueeze(0)
        self.chunks.append(self.predict(x)[0].cpu().numpy().reshape(self.config.chunk, self.act_dim))
        n = len(self.chunks)
        # this step is row n-1-j of the j-th oldest chunk
        rows = np.stack([c[n - 1 - j] for j, c in enumerate(self.chunks)])
        w = self.ensemble_weights[:n]
        return checked_action(w @ rows / w.sum(), self.act_dim, "MLP base policy")

    def save(self, directory: Path, env_spec: Mapping[str, Any], demo_seeds: Iterable[int] = ()) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        weights = {f"{member_prefix(k)}{name}": v.contiguous().cpu()
                   for k, net in enumerate(self.members) for name, v in net.state_dict().items()}
        save_file(weights, str(directory / WEIGHTS_FILE))
        obs_dim = self.members[0].normalizer.mean.shape[0]
        write_policy_manifest(
            directory, self.kind, env_spec, demo_seeds, obs_dim=obs_dim, act_dim=self.act_dim, config=asdict(self.config)
        )


def member_prefix(k: int) -> str:
    """Member k's weights in the file: member 0 unprefixed, so a single base's file reads as it always did."""
    return f"member{k}." if k else ""


def member_weights(weights: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    if k == 0:
        return {name: v for name, v in weights.items() if not name.startswith("member")}
    prefix = member_prefix(k)
    return {name[len(prefix):]: v for name, v in weights.items() if name.startswith(prefix)}


@register_policy_kind(MLPBCPolicy.kind)
def load_mlp_policy(directory: Path, manifest: Mapping[str, Any], device: str) -> MLPBCPolicy:
    try:
        # a base saved before chunks existed has no "chunk": it is a Markov one, whatever the default is now
        config = MLPBCConfig(**{"chunk": 1, **manifest["config"], "hidden": tuple(manifest["config"]["hidden"])})
        if type(config.members) is not int or config.members < 1:
            raise TypeError(f"config.members must be a positive whole number, not {config.members!r}")
        weights = load_file(str(directory / WEIGHTS_FILE))
        members = []
        for k in range(config.members):
            net = MLPBCNet(int(manifest["obs_dim"]), int(manifest["act_dim"]), config.hidden, chunk=config.chunk)
            net.load_state_dict(member_weights(weights, k))
            members.append(net)
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"{directory}: malformed MLP policy manifest ({exc})") from exc
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt files
        raise PolicyError(f"{directory / WEIGHTS_FILE}: cannot load weights ({type(exc).__name__}: {exc})") from exc
    return MLPBCPolicy(members, config, pick_device(device))


def demonstration_frames(demos: Sequence[Demonstration]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Every demonstration's states and the actions taken in them, laid end to end, and each one's length
    (its last observation is the one after its last action: no action of its own)."""
    states = np.stack([flat_state(o) for d in demos for o in d.observations[:-1]])
    return states, np.concatenate([d.actions for d in demos]), [len(d.actions) for d in demos]


def chunk_targets(actions: np.ndarray, episode_lengths: Sequence[int], chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's next `chunk` actions within its own episode (flattened), and which of them exist
    (ACT's padding mask, inverted): a chunk never reaches into the next episode."""
    if sum(episode_lengths) != len(actions):
        raise ValueError(f"episode lengths sum to {sum(episode_lengths)}, but there are {len(actions)} actions")
    ends = np.repeat(np.cumsum(episode_lengths), episode_lengths)[:, None]
    idx = np.arange(len(actions))[:, None] + np.arange(chunk)[None, :]
    targets = actions[np.minimum(idx, ends - 1)].reshape(len(actions), -1)
    mask = np.repeat(idx < ends, actions.shape[1], axis=1)
    return targets, mask


def train_mlp_bc(
    states: np.ndarray, actions: np.ndarray, config: MLPBCConfig, device: str = "auto", progress: bool = True,
    episode_lengths: Sequence[int] | None = None,
) -> tuple[MLPBCPolicy, list[float]]:
    """Mean-squared-error behaviour cloning on frames laid end to end, episode after episode
    (`episode_lengths`; None: one episode); returns the policy and the loss curve (the members' mean).
    Members train one after another, each exactly as its single base would (~20-50 s each on a CPU)."""
    dev = pick_device(device)
    targets, mask = chunk_targets(np.clip(actions, -1.0, 1.0), episode_lengths or [len(actions)], config.chunk)
    x = torch.as_tensor(states, dtype=torch.float32, device=dev)
    y = torch.as_tensor(targets, dtype=torch.float32, device=dev)
    m = torch.as_tensor(mask, dtype=torch.float32, device=dev)
    members, curves = [], []
    first = config.seed * config.members
    for seed in range(first, first + config.members):
        torch.manual_seed(seed)
        net = MLPBCNet(states.shape[1], actions.shape[1], config.hidden, config.obs_std_floor, config.chunk)
        net.normalizer.fit(states)
        net.to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        losses = []
        desc = "train MLP BC" + (f" (member {seed - first + 1}/{config.members})" if config.members > 1 else "")
        for _ in tqdm(range(config.steps), desc=desc, disable=not progress, mininterval=1.0):
            idx = torch.randint(len(x), (config.batch_size,), generator=gen).to(dev)
            loss = ((net(x[idx]) - y[idx]).square() * m[idx]).sum() / m[idx].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        members.append(net)
        curves.append(losses)
    return MLPBCPolicy(members, config, dev), np.mean(curves, axis=0).tolist()
