"""The learning benchmark's evaluation protocol: its report episodes start from initial states that no
demonstration started from (a base cloned from 20 demonstrations, evaluated on their initial states,
scored ~20 points higher there), and older records are counted only inside that window."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from robo_reward.data.collect import DEMO_SEED_OFFSET
from robo_reward.rl.evaluation import EVAL_SEED_OFFSET

ROOT = Path(__file__).resolve().parents[1]


def _bench_learning():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "bench" / "bench_learning.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_report_episodes_never_start_where_a_demonstration_started():
    from sim import make_env

    bench = _bench_learning()
    plan = bench.PLANS["lift"]
    window = bench.report_window(plan)
    assert len(window) == bench.REPORT_EPISODES and window.start >= bench.REPORT_START
    for name, other in bench.PLANS.items():  # every plan, including those sharing another's demonstrations
        data = bench.PLANS[other.data_plan] if other.data_plan else other
        demos = set(range(DEMO_SEED_OFFSET + data.demo_seed, DEMO_SEED_OFFSET + data.demo_seed + data.demos))
        assert not demos & set(bench.report_window(other)), name
    # the initial cube placements themselves: `demos collect` episode i resets with DEMO_SEED_OFFSET + i,
    # `eval --seed S` episode i with EVAL_SEED_OFFSET + S + i
    env = make_env("lift", "Panda")
    try:
        def cube(seed: int) -> tuple:
            obs, _ = env.reset(seed=seed)
            return tuple(np.round(obs["observation.environment_state"][:3], 6))

        demo_cubes = {cube(DEMO_SEED_OFFSET + plan.demo_seed + i) for i in range(plan.demos)}
        first = EVAL_SEED_OFFSET + bench.report_first_seed(plan)
        report_cubes = {cube(first + i) for i in range(bench.REPORT_EPISODES)}
        assert len(report_cubes) == bench.REPORT_EPISODES and not demo_cubes & report_cubes
    finally:
        env.close()


def test_older_records_count_only_their_episodes_inside_the_report_window():
    bench = _bench_learning()
    window = bench.report_window(bench.PLANS["lift"])
    # an evaluation recorded on 2,000,000-2,000,099 before the window moved: its first 20 episodes
    # started where the demonstrations did
    old = {"seeds": [2_000_000, 2_000_099], "outcomes": "1" * 20 + "10" * 40, "rate": 0.6, "episodes": 100}
    counted = bench.in_window(old, window)
    assert counted["episodes"] == 100 - (window.start - 2_000_000) == 80
    assert counted["successes"] == 40 and counted["rate"] == 0.5
    new = {"seeds": [window.start, window.stop - 1], "outcomes": "1" * 30 + "0" * 70}
    assert bench.in_window(new, window)["episodes"] == 100 and bench.in_window(new, window)["rate"] == 0.3
