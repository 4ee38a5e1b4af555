"""Networks for the residual learner: a batched Q ensemble, the residual actor, and the
observation normalizer they share.

The critic ensemble (REDQ style, 10 heads) runs as one batched matmul per layer instead of a
Python loop over heads, which is what makes a high update-to-data ratio affordable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """`num_members` independent linear layers evaluated with one `torch.baddbmm`."""

    def __init__(self, num_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.num_members = num_members
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(num_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Same distribution as nn.Linear's default init, drawn independently per member."""
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x: (E, B, in), or (B, in) shared by all members -> (E, B, out); `members`: only these (E = their count)."""
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
        return torch.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"num_members={self.num_members}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleMLP(nn.Module):
    """`num_members` MLPs (Linear -> LayerNorm -> ReLU per hidden layer) in one batched forward."""

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        hidden: tuple[int, ...],
        out_dim: int,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        self.num_members = num_members
        self.layer_norm = layer_norm
        dims = (in_dim, *hidden)
        self.hidden_layers = nn.ModuleList(
            EnsembleLinear(num_members, d_in, d_out) for d_in, d_out in zip(dims[:-1], dims[1:])
        )
        # Per-member LayerNorm affine parameters; F.layer_norm's own affine is shared, so it is not used.
        self.norm_weights = nn.ParameterList(
            nn.Parameter(torch.ones(num_members, 1, h)) for h in (hidden if layer_norm else ())
        )
        self.norm_biases = nn.ParameterList(
            nn.Parameter(torch.zeros(num_members, 1, h)) for h in (hidden if layer_norm else ())
        )
        self.output_layer = EnsembleLinear(num_members, dims[-1], out_dim)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x: (E, B, in_dim) or (B, in_dim) -> (E, B, out_dim); `members`: only these members (E = their
        count), e.g. the few target heads a TD target takes its minimum over."""
        for i, layer in enumerate(self.hidden_layers):
            x = layer(x, members)
            if self.layer_norm:
                weight, bias = self.norm_weights[i], self.norm_biases[i]
                if members is not None:
                    weight, bias = weight[members], bias[members]
                x = torch.addcmul(bias, F.layer_norm(x, x.shape[-1:]), weight)  # one pass for the affine
            x = x.relu_()  # in place on a fresh tensor (the layer's or the affine's): one allocation less
        return self.output_layer(x, members)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    """A single MLP: (Linear -> LayerNorm -> ReLU) per hidden layer, then a Linear."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers.append(nn.Linear(in_dim, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(nn.ReLU())
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def residual_bounds(scale: float | Sequence[float], act_dim: int) -> np.ndarray:
    """The residual's bound per action dimension (float64, as numpy clips): one scale for all, or one per
    dimension."""
    bounds = np.asarray(scale, np.float64).reshape(-1)
    if bounds.size not in (1, act_dim):
        raise ValueError(f"residual_scale has {bounds.size} values; the action has {act_dim} dimensions")
    return np.broadcast_to(bounds, (act_dim,)).copy()


class ResidualActor(nn.Module):
    """Deterministic residual policy: `scale * tanh(net([obs_normalized, base_action]))`.

    The last layer starts at exactly zero, so a fresh actor adds nothing and the executed
    policy is the base policy until training moves it (ResFiT).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        scale: float | Sequence[float] = 0.1,
    ) -> None:
        super().__init__()
        # not saved with the weights: the bound is the config's (checkpoints from before it stay loadable)
        self.register_buffer("scale", torch.as_tensor(residual_bounds(scale, act_dim), dtype=torch.float32),
                             persistent=False)
        self.net = mlp(obs_dim + act_dim, hidden, act_dim, layer_norm=True)
        last_layer = self.net[-1]
        nn.init.zeros_(last_layer.weight)
        nn.init.zeros_(last_layer.bias)

    def forward(self, obs_normalized: torch.Tensor, base_action: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim), (B, act_dim) -> residual (B, act_dim) with |residual| <= scale."""
        return self.scale * torch.tanh(self.net(torch.cat([obs_normalized, base_action], dim=-1)))


class EnsembleCritic(nn.Module):
    """`num_heads` Q functions Q(s, a) over the executed action, computed in one batched call."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_heads: int = 10,
        hidden: tuple[int, ...] = (256, 256),
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_heads = EnsembleMLP(num_heads, obs_dim + act_dim, hidden, 1, layer_norm=True)

    def forward(self, obs_normalized: torch.Tensor, action: torch.Tensor,
                heads: torch.Tensor | None = None) -> torch.Tensor:
        """(B, obs_dim), (B, act_dim) -> Q values (num_heads, B); `heads`: only these (len(heads), B)."""
        return self.q_heads(torch.cat([obs_normalized, action], dim=-1), heads).squeeze(-1)


# Smallest per-dimension std the normalizer divides by (observation units: m, rad, rotation entries).
# Online, a policy leaves the demonstrations' narrow spread (gripper rotation, wrist joints): with a floor
# of 1e-3, 2% of the states a BC base visited sat at the clip and its success was 30% (Lift, 2 seeds x
# 100 episodes); with 0.1, 0.6% and 44% (bench/bench_normalizer.py, docs/BENCHMARKS.md).
OBS_STD_FLOOR = 0.1


class ObsNormalizer(nn.Module):
    """Fixed per-dimension standardisation fitted once on demonstrations.

    Kept fixed during RL so that the critic's inputs (and hence its TD targets) do not drift;
    the statistics are buffers so they travel with the checkpoint.
    """

    def __init__(self, dim: int, min_std: float, clip: float = 10.0) -> None:
        super().__init__()
        self.clip = clip
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, observations: np.ndarray) -> None:
        """Set mean/std from an (N, dim) array; std is floored so constant features stay finite."""
        observations = np.asarray(observations, dtype=np.float64).reshape(-1, self.mean.shape[0])
        self.mean.copy_(torch.as_tensor(observations.mean(axis=0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(observations.std(axis=0), self.min_std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).clamp(-self.clip, self.clip)
