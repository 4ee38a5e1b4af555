"""Learner gradient updates per second: batched Q ensemble vs a Python loop of separate critics.

Both variants run the same `ResidualTD3.update` (critic step every call, actor step every
policy_delay-th call, Polyak targets); only the critic module differs. Writes
bench/results/learner_throughput_<device>.json and prints a table.

    python bench/bench_learner_throughput.py [--seconds 10] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from robo_reward.rl.networks import mlp
from robo_reward.rl.residual import ResidualTD3, ResidualTD3Config

OBS_DIM, ACT_DIM = 42, 7


class PerHeadLoopCritic(nn.Module):
    """The unbatched baseline: `num_heads` independent MLPs called one after another."""

    def __init__(self, obs_dim: int, act_dim: int, num_heads: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(mlp(obs_dim + act_dim, hidden, 1) for _ in range(num_heads))

    def forward(self, obs_normalized: torch.Tensor, action: torch.Tensor,
                heads: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([obs_normalized, action], dim=-1)
        chosen = range(len(self.heads)) if heads is None else heads.tolist()
        return torch.stack([self.heads[h](x).squeeze(-1) for h in chosen])


def build_learner(variant: str, cfg: ResidualTD3Config, device: torch.device) -> ResidualTD3:
    learner = ResidualTD3(OBS_DIM, ACT_DIM, cfg, device)
    if variant == "per_head_loop":
        learner.critic = PerHeadLoopCritic(OBS_DIM, ACT_DIM, cfg.num_q, cfg.critic_hidden).to(device)
        learner.critic_target = PerHeadLoopCritic(OBS_DIM, ACT_DIM, cfg.num_q, cfg.critic_hidden).to(device)
        learner.critic_target.load_state_dict(learner.critic.state_dict())
        learner.critic_target.requires_grad_(False)
        learner.critic_optimizer = torch.optim.Adam(learner.critic.parameters(), lr=cfg.critic_lr)
    return learner


def random_batch(batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch = {
        "obs": torch.randn(batch_size, OBS_DIM, generator=generator),
        "base_action": torch.rand(batch_size, ACT_DIM, generator=generator) * 2 - 1,
        "action": torch.rand(batch_size, ACT_DIM, generator=generator) * 2 - 1,
        "n_step_return": torch.rand(batch_size, generator=generator),
        "next_obs": torch.randn(batch_size, OBS_DIM, generator=generator),
        "next_base_action": torch.rand(batch_size, ACT_DIM, generator=generator) * 2 - 1,
        "discount": torch.full((batch_size,), 0.99**3),
    }
    return {key: value.to(device) for key, value in batch.items()}


def measure_updates_per_second(
    learner: ResidualTD3, batch: dict[str, torch.Tensor], seconds: float, warmup_updates: int
) -> tuple[float, int]:
    """Timed loop of full updates (actor every policy_delay-th), after untimed warm-up updates."""
    policy_delay = learner.cfg.policy_delay
    for i in range(warmup_updates):
        learner.update(batch, update_actor=i % policy_delay == 0)
    if batch["obs"].is_cuda:
        torch.cuda.synchronize()
    num_updates, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        learner.update(batch, update_actor=num_updates % policy_delay == 0)
        num_updates += 1
    if batch["obs"].is_cuda:
        torch.cuda.synchronize()
    return num_updates / (time.perf_counter() - start), num_updates


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads)"


def cpu_model() -> str:
    """platform.processor() is often empty on Linux; /proc/cpuinfo names the model."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed duration per variant and device")
    parser.add_argument("--warmup-updates", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-q", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = ResidualTD3Config(batch_size=args.batch_size, num_q=args.num_q)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    print(f"{'device':<8} {'critic':<16} {'updates/s':>10} {'ms/update':>10} {'updates':>8}")
    for device_type in args.devices:
        device = torch.device(device_type)
        batch = random_batch(args.batch_size, device)
        results = []
        for variant in ("batched_ensemble", "per_head_loop"):
            learner = build_learner(variant, cfg, device)
            updates_per_s, num_updates = measure_updates_per_second(
                learner, batch, args.seconds, args.warmup_updates
            )
            results.append({"critic": variant, "updates_per_s": updates_per_s, "num_updates": num_updates})
            ms_per_update = 1000 / updates_per_s
            print(f"{device_type:<8} {variant:<16} {updates_per_s:>10.1f} {ms_per_update:>10.2f} {num_updates:>8}")
        speedup = results[0]["updates_per_s"] / results[1]["updates_per_s"]
        print(f"{device_type:<8} batched speedup x{speedup:.2f}")
        report = {
            "device": device_name(device),
            "device_type": device.type,
            "torch_version": torch.__version__,
            "obs_dim": OBS_DIM,
            "act_dim": ACT_DIM,
            "batch_size": args.batch_size,
            "num_q": args.num_q,
            "critic_hidden": list(cfg.critic_hidden),
            "actor_hidden": list(cfg.actor_hidden),
            "policy_delay": cfg.policy_delay,
            "seconds_per_variant": args.seconds,
            "load_average_1min_at_end": os.getloadavg()[0],  # other jobs on the CPU skew these numbers
            "results": results,
            "batched_speedup": speedup,
        }
        (args.output_dir / f"learner_throughput_{device.type}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
