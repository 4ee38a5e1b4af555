"""Reward-model throughput: CLIP ViT-B-32 reward batched vs one frame at a time, and the hop model
(one online step = 3 hop predictions), in frames/s.

  python bench/bench_reward_throughput.py --device cpu     # -> bench/results/reward_throughput_cpu.json
  python bench/bench_reward_throughput.py --device cuda    # on a GPU machine (fp16 autocast)

Weights are random (nothing can be downloaded here); throughput does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from robo_reward.rewards.base import Episode
from robo_reward.rewards.clip import ClipReward, ClipRewardConfig
from robo_reward.rewards.process import HopNet, HopNetConfig, ProcessReward, TrainedHopPredictor

RESULTS = Path(__file__).parent / "results"


def timed(fn, frames: int, seconds: float) -> float:
    """frames/s of fn() repeated for at least `seconds` after one warm-up call."""
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += frames
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--output-dir", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (args.batch, 128, 128, 3), dtype=np.uint8)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    results: dict = {"device": device_name, "threads": args.threads, "torch": torch.__version__,
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores", "command":
                     "python bench/bench_reward_throughput.py " + " ".join(os.sys.argv[1:])}

    clip = ClipReward(ClipRewardConfig(model="ViT-B-32", pretrained=None, camera="cam", device=args.device,
                                       batch_size=args.batch))
    episode = Episode({"cam": frames}, "lift the red cube")
    stream = clip.stream("lift the red cube")
    batched = timed(lambda: clip.score_episode(episode), args.batch, args.seconds)
    single = timed(lambda: stream.step({"cam": frames[0]}), 1, args.seconds)
    results["clip_vit_b32"] = {"batched_frames_per_s": batched, "one_at_a_time_frames_per_s": single,
                               "batch": args.batch, "speedup": batched / single}
    print(f"CLIP ViT-B-32: batched {batched:.1f} frames/s vs one at a time {single:.1f} (x{batched / single:.2f})")

    net = HopNet(HopNetConfig(cameras=("front", "wrist")))
    hop = ProcessReward(TrainedHopPredictor(net, torch.device(args.device)),
                        {"front": frames[0], "wrist": frames[1]})
    two_views = Episode({"front": frames, "wrist": frames[::-1].copy()}, "lift the red cube")
    hop_stream = hop.stream("lift the red cube")
    hop_stream.reset({"front": frames[0], "wrist": frames[1]})
    hop_batched = timed(lambda: hop.score_episode(two_views), args.batch, args.seconds)
    hop_single = timed(lambda: hop_stream.step({"front": frames[2], "wrist": frames[3]}), 1, args.seconds)
    results["hop_model"] = {"episode_frames_per_s": hop_batched, "online_steps_per_s": hop_single,
                            "views": 2, "image_size": net.cfg.image_size, "speedup": hop_batched / hop_single}
    print(f"hop model (2 views, {net.cfg.image_size}px): episode scoring {hop_batched:.1f} frames/s, "
          f"online {hop_single:.1f} steps/s")
    tag = "cuda" if args.device.startswith("cuda") else "cpu"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"reward_throughput_{tag}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
