"""Core residual learner: n-step buffer, batch mix, networks, ResidualTD3 updates and resume."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from devices import DEVICES, needs_cuda

from robo_reward.rl.buffers import NStepReplayBuffer, sample_mixed
from robo_reward.rl.exploration import ExplorationNoise
from robo_reward.rl.networks import EnsembleCritic, EnsembleLinear, ResidualActor
from robo_reward.rl.residual import ResidualTD3, ResidualTD3Config

GAMMA = 0.9


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """These networks are tiny: one thread is as fast, and far faster when other jobs share the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _add_episode(
    buffer: NStepReplayBuffer, rewards: list[float], terminated: bool, first_step: int = 0, ends: bool = True
) -> None:
    """obs_t = [t, -t], base_action_t = [t / 100]; if `ends`, the episode ends after the last reward."""
    for i, reward in enumerate(rewards):
        t = first_step + i
        is_last = ends and i == len(rewards) - 1
        buffer.add(
            obs=[t, -t],
            base_action=[t / 100],
            action=[t / 50],
            reward=reward,
            next_obs=[t + 1, -(t + 1)],
            next_base_action=[(t + 1) / 100],
            terminated=terminated and is_last,
            truncated=not terminated and is_last,
        )


@pytest.mark.parametrize("terminated", [True, False])
def test_n_step_returns_and_discounts_match_hand_computation(terminated: bool) -> None:
    buffer = NStepReplayBuffer(capacity=10, obs_dim=2, act_dim=1, n_step=3, gamma=GAMMA)
    _add_episode(buffer, [1.0, 2.0, 3.0, 4.0, 5.0], terminated)

    assert len(buffer) == 5 and not buffer.pending
    np.testing.assert_allclose(buffer.n_step_return[:5], [5.23, 7.94, 10.65, 8.5, 5.0], rtol=1e-6)
    np.testing.assert_array_equal(buffer.next_obs[:5, 0], [3, 4, 5, 5, 5])
    np.testing.assert_allclose(buffer.next_base_action[:5, 0], [0.03, 0.04, 0.05, 0.05, 0.05], rtol=1e-6)
    np.testing.assert_array_equal(buffer.obs[:5, 0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(buffer.action[:5, 0], np.arange(5) / 50, rtol=1e-6)
    expected_discount = [0.729, 0.729, 0, 0, 0] if terminated else [0.729, 0.729, 0.729, 0.81, 0.9]
    np.testing.assert_allclose(buffer.discount[:5], expected_discount, rtol=1e-6)


def test_n_larger_than_episode_emits_only_at_episode_end() -> None:
    buffer = NStepReplayBuffer(capacity=10, obs_dim=2, act_dim=1, n_step=10, gamma=GAMMA)
    _add_episode(buffer, [1.0, 2.0], terminated=False, ends=False)
    assert len(buffer) == 0 and len(buffer.pending) == 2
    buffer.add([2, -2], [0.02], [0.04], 3.0, [3, -3], [0.03], terminated=False, truncated=True)

    assert len(buffer) == 3 and not buffer.pending
    np.testing.assert_allclose(buffer.n_step_return[:3], [5.23, 4.7, 3.0], rtol=1e-6)
    np.testing.assert_allclose(buffer.discount[:3], [0.729, 0.81, 0.9], rtol=1e-6)
    np.testing.assert_array_equal(buffer.next_obs[:3, 0], [3, 3, 3])


def test_circular_overwrite_keeps_newest_items() -> None:
    buffer = NStepReplayBuffer(capacity=4, obs_dim=2, act_dim=1, n_step=1, gamma=GAMMA)
    _add_episode(buffer, [float(t) for t in range(6)], terminated=True)

    assert len(buffer) == 4 and buffer.write_index == 2
    np.testing.assert_array_equal(buffer.obs[:, 0], [4, 5, 2, 3])
    np.testing.assert_array_equal(buffer.n_step_return, [4, 5, 2, 3])
    assert set(buffer.sample(200, np.random.default_rng(0))["obs"][:, 0]) == {2, 3, 4, 5}


def test_kept_items_outlive_the_ring_and_a_checkpoint(tmp_path) -> None:
    """A robot run's demonstration buffer keeps its demonstrations however many operator interventions
    follow: the ring wraps round to the slot after the kept items, the oldest intervention going first."""
    buffer = NStepReplayBuffer(capacity=5, obs_dim=2, act_dim=1, n_step=1, gamma=GAMMA)
    _add_episode(buffer, [1.0, 1.0], terminated=True)  # the demonstrations: obs 0, 1
    buffer.keep_stored()
    _add_episode(buffer, [0.0] * 7, terminated=False, first_step=10)  # interventions: obs 10 ... 16
    np.testing.assert_array_equal(buffer.obs[:, 0], [0, 1, 16, 14, 15])
    assert len(buffer) == 5 and buffer.write_index == 3
    np.savez(tmp_path / "buffer.npz", **buffer.state_dict())
    with np.load(tmp_path / "buffer.npz", allow_pickle=False) as saved:
        restored = NStepReplayBuffer.from_state_dict(dict(saved))
    for b in (buffer, restored):
        _add_episode(b, [0.0], terminated=False, first_step=20)
        np.testing.assert_array_equal(b.obs[:, 0], [0, 1, 16, 20, 15])
    full = NStepReplayBuffer(capacity=2, obs_dim=2, act_dim=1, n_step=1, gamma=GAMMA)
    _add_episode(full, [1.0, 1.0], terminated=True)
    full.keep_stored()
    with pytest.raises(ValueError, match="2 kept items in 2 slots: no room"):
        _add_episode(full, [0.0], terminated=True)


def test_buffer_state_dict_round_trips_through_npz_with_pending_steps(tmp_path) -> None:
    original = NStepReplayBuffer(capacity=6, obs_dim=2, act_dim=1, n_step=3, gamma=GAMMA)
    _add_episode(original, [1.0, 0.0, 2.0], terminated=True)
    _add_episode(original, [0.5, 0.25, 0.125, 1.5, 0.0, 0.0, 0.3], terminated=False, first_step=10, ends=False)
    original.add([17, -17], [0.17], [0.34], 0.7, [18, -18], [0.18], terminated=False, truncated=False)
    assert len(original.pending) == 2 and len(original) == 6  # wrapped and mid-episode

    np.savez(tmp_path / "buffer.npz", **original.state_dict())
    with np.load(tmp_path / "buffer.npz", allow_pickle=False) as saved:
        restored = NStepReplayBuffer(capacity=6, obs_dim=2, act_dim=1, n_step=3, gamma=GAMMA)
        restored.load_state_dict(dict(saved))

    for buffer in (original, restored):  # finish the episode identically in both
        buffer.add([18, -18], [0.18], [0.36], 0.9, [19, -19], [0.19], terminated=True, truncated=False)
    for key, value in original.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[key], value, err_msg=key)
    sample_a = original.sample(32, np.random.default_rng(3))
    sample_b = restored.sample(32, np.random.default_rng(3))
    for key in sample_a:
        np.testing.assert_array_equal(sample_a[key], sample_b[key])

    with pytest.raises(ValueError, match="capacity"):
        NStepReplayBuffer(capacity=7, obs_dim=2, act_dim=1, n_step=3, gamma=GAMMA).load_state_dict(
            original.state_dict()
        )


def _filled_buffer(num_items: int, obs_sign: float, rng: np.random.Generator, obs_dim: int = 2) -> NStepReplayBuffer:
    buffer = NStepReplayBuffer(capacity=num_items, obs_dim=obs_dim, act_dim=1, n_step=1)
    for _ in range(num_items):
        obs = obs_sign * rng.uniform(1.0, 2.0, size=obs_dim)
        buffer.add(obs, [0.0], [0.0], 0.0, obs, [0.0], terminated=False, truncated=True)
    return buffer


def test_sample_mixed_is_half_demo_and_falls_back_to_the_nonempty_buffer() -> None:
    rng = np.random.default_rng(0)
    demo = _filled_buffer(100, +1.0, rng)
    online = _filled_buffer(50, -1.0, rng)
    empty_online = NStepReplayBuffer(capacity=10, obs_dim=2, act_dim=1)

    batch = sample_mixed(demo, online, 256, rng, demo_fraction=0.5, device="cpu")
    assert batch["is_demo"].dtype == torch.bool and int(batch["is_demo"].sum()) == 128
    assert batch["obs"].dtype == torch.float32 and batch["obs"].shape == (256, 2)
    assert torch.all(batch["obs"][batch["is_demo"]] > 0) and torch.all(batch["obs"][~batch["is_demo"]] < 0)

    assert bool(sample_mixed(demo, empty_online, 64, rng)["is_demo"].all())
    assert not bool(sample_mixed(None, online, 64, rng)["is_demo"].any())
    with pytest.raises(ValueError, match="empty"):
        sample_mixed(None, empty_online, 64, rng)


def test_ensemble_linear_broadcasts_shared_input() -> None:
    layer = EnsembleLinear(3, 5, 4)
    x = torch.randn(8, 5)
    torch.testing.assert_close(layer(x), layer(x.expand(3, 8, 5)), rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_batched_critic_equals_a_per_head_loop_over_the_same_parameters(device: str) -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(obs_dim=6, act_dim=3, num_heads=5, hidden=(16, 8))
    with torch.no_grad():  # non-trivial LayerNorm affine so per-member indexing is exercised
        for p in [*critic.q_heads.norm_weights, *critic.q_heads.norm_biases]:
            p.normal_()
    obs, action = torch.randn(11, 6), torch.randn(11, 3)
    critic, obs, action = critic.to(device), obs.to(device), action.to(device)

    mlp = critic.q_heads
    per_head = []
    for e in range(5):
        x = torch.cat([obs, action], dim=-1)
        for i, layer in enumerate(mlp.hidden_layers):
            x = x @ layer.weight[e] + layer.bias[e]
            x = F.relu(F.layer_norm(x, x.shape[-1:], mlp.norm_weights[i][e, 0], mlp.norm_biases[i][e, 0]))
        per_head.append((x @ mlp.output_layer.weight[e] + mlp.output_layer.bias[e]).squeeze(-1))

    q = critic(obs, action)
    assert q.shape == (5, 11)
    torch.testing.assert_close(q, torch.stack(per_head), rtol=1e-5, atol=1e-6)
    # the TD target's few heads, computed alone, are those heads of the full call (in the order asked)
    heads = torch.tensor([3, 0], device=device)
    torch.testing.assert_close(critic(obs, action, heads), q[heads], rtol=1e-5, atol=1e-6)


def _batch_noise(seed: int, std: float = 1.0, shape: tuple[int, int] = (500, 2)):
    """Exploration for a batch of states: one independent draw per row."""
    rng = np.random.default_rng(seed)
    return lambda: rng.normal(0.0, std, shape)


def _small_config(**overrides) -> ResidualTD3Config:
    values = dict(
        critic_hidden=(32, 32), actor_hidden=(32, 32), num_q=4, batch_size=32, utd_ratio=2, critic_warmup_updates=2
    )
    return ResidualTD3Config(**(values | overrides))


def test_fresh_actor_executes_the_base_action_exactly() -> None:
    learner = ResidualTD3(obs_dim=5, act_dim=3, cfg=_small_config(), device="cpu")
    rng = np.random.default_rng(0)
    learner.obs_normalizer.fit(rng.normal(size=(100, 5)))
    obs = rng.normal(size=(20, 5)).astype(np.float32)
    base = rng.uniform(-1, 1, size=(20, 3)).astype(np.float32)

    np.testing.assert_array_equal(learner.act(obs, base), base)
    np.testing.assert_array_equal(learner.act(obs[0], base[0]), base[0])


def test_residual_never_exceeds_scale_even_with_large_weights_and_noise() -> None:
    actor = ResidualActor(obs_dim=4, act_dim=2, hidden=(16,), scale=0.1)
    with torch.no_grad():
        actor.net[-1].weight.normal_(0, 100.0)
    residual = actor(100 * torch.randn(500, 4), torch.randn(500, 2))
    assert residual.abs().max() <= 0.1 and residual.abs().max() > 0.09

    learner = ResidualTD3(4, 2, _small_config(residual_scale=0.1), device="cpu")
    base = np.random.default_rng(1).uniform(-0.5, 0.5, size=(500, 2)).astype(np.float32)
    executed = learner.act(np.zeros((500, 4), np.float32), base, _batch_noise(2))
    deviation = np.abs(executed - base)
    assert deviation.max() <= 0.1 + 1e-6 and deviation.max() > 0.09


def test_a_residual_bound_per_action_dimension() -> None:
    """[0.1, 1.0]: the arm dimension keeps ResFiT's reach while the gripper's can cross its whole range —
    in the actor, in exploration, and in the TD target's smoothing; one scale repeated per dimension
    updates exactly as the scalar does; a list of the wrong length is refused."""
    actor = ResidualActor(obs_dim=4, act_dim=2, hidden=(16,), scale=(0.1, 1.0))
    with torch.no_grad():
        actor.net[-1].weight.normal_(0, 100.0)
    residual = actor(100 * torch.randn(500, 4), torch.randn(500, 2)).abs().amax(dim=0)
    assert 0.09 < residual[0] <= 0.1 and 0.9 < residual[1] <= 1.0

    cfg = _small_config(residual_scale=[0.1, 1.0])
    assert cfg.residual_scale == (0.1, 1.0) and ResidualTD3Config.from_dict(cfg.to_dict()) == cfg
    learner = ResidualTD3(4, 2, cfg, device="cpu")
    deviation = np.abs(learner.act(np.zeros((500, 4), np.float32), np.zeros((500, 2), np.float32),
                                   _batch_noise(2))).max(axis=0)
    assert 0.09 < deviation[0] <= 0.1 + 1e-6 and 0.9 < deviation[1] <= 1.0 + 1e-6

    scalar, _, _ = _learner_and_buffers(_small_config(actor_lr=1e-3, residual_scale=0.2))
    listed, demo, online = _learner_and_buffers(_small_config(actor_lr=1e-3, residual_scale=[0.2]))
    for _ in range(3):
        assert scalar.train_step(demo, online, np.random.default_rng(7)) == \
            listed.train_step(demo, online, np.random.default_rng(7))
    with pytest.raises(ValueError, match="residual_scale has 3 values; the action has 2 dimensions"):
        ResidualTD3(4, 2, _small_config(residual_scale=[0.1, 0.1, 0.1]), device="cpu")
    with pytest.raises(ValueError, match="residual_scale must be in"):
        _small_config(residual_scale=[0.1, 0.0])


def test_white_exploration_draws_the_stream_it_always_drew() -> None:
    """beta 0: one rng.normal per step, so runs recorded before colored noise existed replay exactly."""
    noise = ExplorationNoise(np.random.default_rng(5), 7)
    noise.start_episode(0.05, 0.0, horizon=100)
    drawn = np.stack([noise() for _ in range(250)])
    np.testing.assert_array_equal(drawn, np.random.default_rng(5).normal(0.0, 0.05, (250, 7)))


def test_pink_exploration_keeps_the_per_step_spread_but_drifts_within_an_episode() -> None:
    """What colored noise is for: the same spread per step, but an episode's summed push is several times
    white noise's (a stalled arm gets moved somewhere). Episodes longer than the horizon keep drawing."""
    def episodes(beta: float, count: int = 400, steps: int = 100) -> np.ndarray:
        noise = ExplorationNoise(np.random.default_rng(0), 3)
        out = []
        for _ in range(count):
            noise.start_episode(0.05, beta, horizon=steps)
            out.append([noise() for _ in range(steps)])
        return np.asarray(out)  # (episodes, steps, dims)

    white, pink = episodes(0.0), episodes(1.0)
    for x in (white, pink):
        assert x.std() == pytest.approx(0.05, rel=0.1)
    lag1 = lambda x: float(np.mean(x[:, 1:] * x[:, :-1]) / x.var())  # noqa: E731
    assert abs(lag1(white)) < 0.05 and lag1(pink) > 0.5
    assert pink.sum(axis=1).std() > 2.5 * white.sum(axis=1).std()

    noise = ExplorationNoise(np.random.default_rng(1), 2)
    noise.start_episode(0.05, 1.0, horizon=10)
    longer = np.stack([noise() for _ in range(25)])  # past the horizon: fresh blocks, not a repeat
    assert longer.shape == (25, 2) and not np.allclose(longer[:10], longer[10:20])


def test_held_pushes_stay_inside_the_bound_and_carry_a_stalled_arm_further_than_noise() -> None:
    """What pushes are for: a random residual within the bound held for several steps moves an arm that
    the base holds still by centimetres, where white noise's steps cancel. Off (probability 0), the noise
    stream is the one drawn before pushes existed."""
    cfg = _small_config(exploration_noise=0.05, residual_scale=[0.2, 0.2, 1.0],
                        exploration_push_prob=0.05, exploration_push_steps=10)

    def episodes(config, count: int = 300, steps: int = 100) -> np.ndarray:
        noise = ExplorationNoise(np.random.default_rng(3), 3)
        out = []
        for _ in range(count):
            noise.start_episode_for(config, horizon=steps)
            out.append([noise() for _ in range(steps)])
        return np.asarray(out)

    pushed, white = episodes(cfg), episodes(_small_config(exploration_noise=0.05, residual_scale=[0.2, 0.2, 1.0]))
    np.testing.assert_array_equal(white, np.random.default_rng(3).normal(0.0, 0.05, white.shape))
    assert np.all(np.abs(pushed) <= np.array([0.2, 0.2, 1.0]) + 5 * 0.05)

    def reach(residuals: np.ndarray) -> np.ndarray:
        """How far (m) each episode carries a hand along x that its base holds still: the base commands
        -2 per metre off its stall point, a command moves the hand 5 cm (robosuite's OSC)."""
        x, farthest = np.zeros(len(residuals)), np.zeros(len(residuals))
        for t in range(residuals.shape[1]):
            x = x + 0.05 * np.clip(-2.0 * x + residuals[:, t, 0], -1.0, 1.0)
            farthest = np.maximum(farthest, np.abs(x))
        return farthest

    assert np.median(reach(pushed)) > 2 * np.median(reach(white)) and np.median(reach(pushed)) > 0.03
    steps_pushed = np.mean(np.abs(pushed[:, :, 2]) > 5 * 0.05)  # the gripper: pushes of up to 1.0
    assert 0.1 < steps_pushed < 0.4, steps_pushed  # ~ 5.5 held steps per (20 + 5.5): ~0.2, less the small draws
    with pytest.raises(ValueError, match="exploration_push_prob is a probability"):
        _small_config(exploration_push_prob=1.5)
    with pytest.raises(ValueError, match="exploration_push_steps must be >= 1"):
        _small_config(exploration_push_steps=0)


def test_exploration_follows_the_learner_config_and_rejects_impossible_settings() -> None:
    """Every actor starts an episode's noise from its learner's config; a learner that samples its own
    actions (lerobot's SAC has no exploration_noise) gets none; a std or beta that means nothing is refused."""
    noise = ExplorationNoise(np.random.default_rng(2), 3)
    noise.start_episode_for(_small_config(exploration_noise=0.2, exploration_noise_beta=1.0), horizon=50)
    assert (noise.std, noise.beta, noise.horizon) == (0.2, 1.0, 50)
    noise.start_episode_for(object(), horizon=50)
    assert not np.any([noise() for _ in range(5)])
    with pytest.raises(ValueError, match=r"exploration_noise_beta must be in \[0, 2\]"):
        _small_config(exploration_noise_beta=-1.0)
    with pytest.raises(ValueError, match="exploration_noise is a std"):
        _small_config(exploration_noise=-0.05)


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = ResidualTD3Config(actor_lr=3e-4, critic_hidden=[64, 64])
    assert cfg.critic_hidden == (64, 64)
    assert ResidualTD3Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown ResidualTD3Config keys \\['actor_learning_rate'\\]"):
        ResidualTD3Config.from_dict({"actor_learning_rate": 1e-3})


def _learner_and_buffers(cfg: ResidualTD3Config, obs_dim: int = 4, device: str = "cpu"):
    rng = np.random.default_rng(0)
    demo, online = _filled_buffer(64, +1.0, rng, obs_dim), _filled_buffer(64, -1.0, rng, obs_dim)
    demo.n_step_return[:] = rng.uniform(size=64)
    online.discount[:] = 0.99
    learner = ResidualTD3(obs_dim, 1, cfg, device=device)
    learner.obs_normalizer.fit(np.concatenate([demo.obs, online.obs]))
    return learner, demo, online


def test_actor_waits_for_critic_warmup() -> None:
    learner, demo, online = _learner_and_buffers(_small_config(actor_lr=1e-3, utd_ratio=2, critic_warmup_updates=2))
    actor_before = copy.deepcopy(learner.actor.state_dict())
    metrics = learner.train_step(demo, online, np.random.default_rng(0))
    assert "actor_loss" not in metrics and learner.num_updates == 2
    for key, value in learner.actor.state_dict().items():
        assert torch.equal(value, actor_before[key])

    metrics = learner.train_step(demo, online, np.random.default_rng(1))
    assert "actor_loss" in metrics  # update 2 is past warm-up and a policy_delay multiple
    assert learner.actor.net[-1].weight.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_resume_from_weights_only_checkpoint_reproduces_updates_exactly(tmp_path, device: str) -> None:
    learner, demo, online = _learner_and_buffers(_small_config(actor_lr=1e-3), device=device)
    rng = np.random.default_rng(5)
    for _ in range(3):
        learner.train_step(demo, online, rng)
    torch.save(learner.state_dict(), tmp_path / "learner.pt")
    rng_at_checkpoint = copy.deepcopy(rng)

    metrics_original = [learner.train_step(demo, online, rng) for _ in range(3)]
    resumed = ResidualTD3.from_state_dict(torch.load(tmp_path / "learner.pt", weights_only=True), device=device)
    metrics_resumed = [resumed.train_step(demo, online, rng_at_checkpoint) for _ in range(3)]

    assert metrics_resumed == metrics_original
    for name in ("actor", "actor_target", "critic", "critic_target", "obs_normalizer"):
        original, restored = getattr(learner, name).state_dict(), getattr(resumed, name).state_dict()
        for key in original:
            assert torch.equal(original[key], restored[key]), f"{name}.{key}"
    assert torch.equal(learner.generator.get_state(), resumed.generator.get_state())

    with pytest.raises(ValueError, match="config"):
        ResidualTD3(4, 1, _small_config(actor_lr=1e-3, tau=0.01), device).load_state_dict(learner.state_dict())


@needs_cuda
def test_the_cuda_learner_follows_the_cpu_learner_and_its_checkpoint_acts_the_same_on_cpu(tmp_path) -> None:
    """With the learner's own draws switched off (no target noise; the TD target's minimum over every head,
    so the head choice cannot matter) CPU and CUDA run the same arithmetic on the same batches: the
    networks must agree to float rounding after many updates, and a CUDA checkpoint must act the same on a
    CPU-only robot."""
    cfg = _small_config(actor_lr=1e-3, critic_lr=1e-3, target_noise=0.0, num_target_min=4)
    learners = {}
    for device in ("cpu", "cuda"):
        learner, demo, online = _learner_and_buffers(cfg, device=device)
        rng = np.random.default_rng(3)
        metrics = [learner.train_step(demo, online, rng) for _ in range(25)]
        learners[device] = learner, metrics
    (cpu, cpu_metrics), (gpu, gpu_metrics) = learners["cpu"], learners["cuda"]
    for a, b in zip(cpu_metrics, gpu_metrics):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-4 * (1 + abs(a[k])) for k in a), (a, b)
    for name in ("actor", "critic", "critic_target"):
        for key, value in getattr(cpu, name).state_dict().items():
            torch.testing.assert_close(getattr(gpu, name).state_dict()[key].cpu(), value, rtol=1e-4, atol=1e-5)

    torch.save(gpu.state_dict(), tmp_path / "learner.pt")
    with pytest.warns(UserWarning, match="generator is for cuda"):
        on_cpu = ResidualTD3.from_state_dict(
            torch.load(tmp_path / "learner.pt", weights_only=True, map_location="cpu"), device="cpu")
    obs = np.random.default_rng(4).normal(size=(16, 4)).astype(np.float32)
    base = np.random.default_rng(5).uniform(-1, 1, size=(16, 1)).astype(np.float32)
    np.testing.assert_allclose(on_cpu.act(obs, base), gpu.act(obs, base), atol=1e-6)


BANDIT_BEST_ACTION = np.array([0.25, -0.25], dtype=np.float32)


def _bandit_residuals(device: str = "cpu", **overrides) -> np.ndarray:
    """One-step bandit, base action 0, reward = -|a - a*|_1 with a* = [0.25, -0.25] inside the scale:
    the residuals a learner trained on it chooses for 64 new states.

    A V-shaped reward (rather than a quadratic, whose flat peak a small ReLU critic resolves
    only slowly) keeps this a quick check that critic + actor climb the Q landscape.
    """
    cfg = ResidualTD3Config(**(dict(
        critic_hidden=(64, 64), actor_hidden=(64, 64), num_q=4, batch_size=128, utd_ratio=1,
        critic_lr=1e-3, actor_lr=1e-3, critic_warmup_updates=100, residual_scale=0.5) | overrides))
    rng = np.random.default_rng(0)
    demo = NStepReplayBuffer(capacity=2000, obs_dim=3, act_dim=2, n_step=cfg.n_step, gamma=cfg.gamma)
    for _ in range(2000):
        obs = rng.normal(size=3)
        action = rng.uniform(-0.5, 0.5, size=2)
        reward = -float(np.abs(action - BANDIT_BEST_ACTION).sum())
        demo.add(obs, np.zeros(2), action, reward, obs, np.zeros(2), terminated=True, truncated=False)
    learner = ResidualTD3(3, 2, cfg, device=device)
    learner.obs_normalizer.fit(demo.obs)
    online = NStepReplayBuffer(capacity=10, obs_dim=3, act_dim=2)

    for _ in range(700):
        learner.train_step(demo, online, rng)

    obs = rng.normal(size=(64, 3)).astype(np.float32)
    return learner.act(obs, np.zeros((64, 2), np.float32))


@pytest.mark.parametrize("device", DEVICES)
def test_learner_moves_residual_toward_the_better_action(device: str) -> None:
    residual = _bandit_residuals(device)
    initial_distance = float(np.linalg.norm(BANDIT_BEST_ACTION))
    final_distance = float(np.linalg.norm(residual - BANDIT_BEST_ACTION, axis=1).mean())
    assert final_distance < 0.3 * initial_distance, (residual.mean(axis=0), final_distance)


def test_the_residual_penalty_stops_where_its_pull_matches_the_critics_gain() -> None:
    """With `residual_penalty` w the actor minimises -Q + w * mean_i (r_i / bound)^2: per dimension the
    pull is w * r_i / bound^2 (mean over the 2 dimensions), the V-shaped Q's slope is 1, so the residual
    stops at bound^2 / w = 0.125 instead of 0.25 (w = 2, bound 0.5)."""
    residual = _bandit_residuals(residual_penalty=2.0)
    expected = BANDIT_BEST_ACTION / 2
    assert np.abs(residual.mean(axis=0) - expected).max() < 0.04, residual.mean(axis=0)
    with pytest.raises(ValueError, match="residual_penalty"):
        ResidualTD3Config(residual_penalty=-1.0)


def test_the_normalizer_keeps_dimensions_that_barely_moved_in_the_demos_off_the_clip():
    """A dimension constant in the demonstrations, or moving a millimetre, must not turn a small online
    deviation into a value at the clip; dimensions that do move are standardised as usual."""
    from robo_reward.rl.networks import OBS_STD_FLOOR, ObsNormalizer

    rng = np.random.default_rng(0)
    demos = np.c_[np.full(500, 0.7), 0.3 + 0.001 * rng.normal(size=500), 2.0 * rng.normal(size=500)]
    normalizer = ObsNormalizer(3, OBS_STD_FLOOR)
    normalizer.fit(demos)
    online = torch.tensor([[0.75, 0.35, 2.0]])  # 5 cm off on the first two
    z = normalizer(online)[0].numpy()
    np.testing.assert_allclose(z[:2], [0.05 / OBS_STD_FLOOR, 0.05 / OBS_STD_FLOOR], rtol=0.05)
    assert np.all(np.abs(z[:2]) < 1.0) and abs(z[2] - (2.0 - demos[:, 2].mean()) / demos[:, 2].std()) < 1e-4
    tight = ObsNormalizer(3, 1e-3)
    tight.fit(demos)
    assert np.all(np.abs(tight(online)[0, :2].numpy()) == tight.clip)  # what the floor prevents


def test_action_chunk_targets_stay_inside_their_episode() -> None:
    from robo_reward.rl.bc import chunk_targets

    actions = np.array([[1.0], [2.0], [3.0], [10.0], [20.0]])
    targets, mask = chunk_targets(actions, [3, 2], chunk=2)
    np.testing.assert_array_equal(targets, [[1, 2], [2, 3], [3, 3], [10, 20], [20, 20]])
    np.testing.assert_array_equal(mask, [[1, 1], [1, 1], [1, 0], [1, 1], [1, 0]])
    with pytest.raises(ValueError, match="sum to 4, but there are 5 actions"):
        chunk_targets(actions, [3, 1], chunk=2)


def test_a_chunked_base_executes_the_temporal_ensemble_of_its_chunks_and_forgets_them_on_reset(tmp_path) -> None:
    from robo_reward.rl.bc import MLPBCConfig, MLPBCNet, MLPBCPolicy
    from robo_reward.rl.policies import load_policy

    torch.manual_seed(0)
    config = MLPBCConfig(hidden=(8,), chunk=3, ensemble_decay=0.5)
    net = MLPBCNet(4, 2, config.hidden, chunk=3)
    policy = MLPBCPolicy([net], config, torch.device("cpu"))
    observations = [{"observation.state": np.random.default_rng(i).normal(size=4).astype(np.float32)} for i in range(4)]
    with torch.no_grad():
        c = [net(torch.as_tensor(o["observation.state"])[None])[0].numpy().reshape(3, 2) for o in observations]
    w1, w2 = np.exp(-0.5), np.exp(-1.0)  # the oldest chunk covering a step weighs 1
    expected = [c[0][0], (c[0][1] + w1 * c[1][0]) / (1 + w1), (c[0][2] + w1 * c[1][1] + w2 * c[2][0]) / (1 + w1 + w2),
                (c[1][2] + w1 * c[2][1] + w2 * c[3][0]) / (1 + w1 + w2)]  # c[0] no longer covers step 3
    policy.reset()
    np.testing.assert_allclose([policy.act(o) for o in observations], expected, rtol=1e-6)
    policy.reset()
    np.testing.assert_allclose(policy.act(observations[3]), c[3][0], rtol=1e-6)

    policy.save(tmp_path / "base", {"task": "lift", "robot": "Panda"})
    loaded, _ = load_policy(tmp_path / "base", device="cpu")
    loaded.reset()
    np.testing.assert_allclose([loaded.act(o) for o in observations], expected, rtol=1e-6)


def test_a_base_of_k_members_acts_on_the_mean_of_the_single_bases_of_its_member_seeds(tmp_path) -> None:
    """Member k of BC seed s is exactly the single base of seed s*K + k (so the members of seeds 0, 1, 2
    never overlap), the policy executes the temporal ensemble of the members' mean chunk, and it saves and
    loads as one base."""
    from robo_reward.rl.bc import MLPBCConfig, train_mlp_bc
    from robo_reward.rl.policies import load_policy

    rng = np.random.default_rng(0)
    states = rng.normal(size=(60, 4)).astype(np.float32)
    actions = np.tanh(states[:, :2] + 0.3 * rng.normal(size=(60, 2)))
    config = MLPBCConfig(hidden=(16,), steps=50, batch_size=16, chunk=3)
    ensemble, _ = train_mlp_bc(states, actions, replace(config, seed=1, members=2), "cpu", False, [30, 30])
    singles = [train_mlp_bc(states, actions, replace(config, seed=s), "cpu", False, [30, 30])[0] for s in (2, 3)]
    for member, single in zip(ensemble.members, singles):
        for name, value in single.members[0].state_dict().items():
            torch.testing.assert_close(member.state_dict()[name], value, rtol=0, atol=0)

    observations = [{"observation.state": s} for s in states[:5]]
    with torch.no_grad():  # each step's mean chunk over the two singles, then ACT's temporal ensemble
        chunks = [np.mean([b.members[0](torch.as_tensor(o["observation.state"])[None])[0].numpy() for b in singles],
                          axis=0).reshape(3, 2) for o in observations]
    w = np.exp(-config.ensemble_decay * np.arange(3))
    expected = [sum(w[j] * chunks[t - (min(t, 2) - j)][min(t, 2) - j] for j in range(min(t, 2) + 1))
                / w[: min(t, 2) + 1].sum() for t in range(5)]
    ensemble.reset()
    acted = [ensemble.act(o) for o in observations]
    np.testing.assert_allclose(acted, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(acted[0], singles[0].act(observations[0]), atol=1e-3)  # not just member 0

    ensemble.save(tmp_path / "base", {"task": "lift", "robot": "Panda"})
    loaded, _ = load_policy(tmp_path / "base", device="cpu")
    loaded.reset()
    np.testing.assert_allclose([loaded.act(o) for o in observations], acted, rtol=1e-6)

    # a manifest that does not match its weights is refused naming the file and what is wrong
    from robo_reward.errors import PolicyError
    from robo_reward.rl.policies import POLICY_FILE

    manifest_path = tmp_path / "base" / POLICY_FILE
    manifest = json.loads(manifest_path.read_text())
    for members, says in [(0, "config.members must be a positive whole number, not 0"),
                          ("2", "config.members must be a positive whole number, not '2'"),
                          (3, "model.safetensors: cannot load weights")]:
        manifest_path.write_text(json.dumps({**manifest, "config": {**manifest["config"], "members": members}}))
        with pytest.raises(PolicyError, match=says):
            load_policy(tmp_path / "base", device="cpu")


def test_a_base_saved_before_chunks_existed_loads_as_the_markov_base_it_is(tmp_path) -> None:
    """Its manifest has no "chunk": it must load with one action per state (not the default 8, whose
    output layer would not fit its weights) and act as it did."""
    from robo_reward.rl.bc import MLPBCConfig, MLPBCNet, MLPBCPolicy
    from robo_reward.rl.policies import POLICY_FILE, load_policy

    torch.manual_seed(0)
    config = MLPBCConfig(hidden=(8,), chunk=1)
    policy = MLPBCPolicy([MLPBCNet(4, 2, config.hidden, chunk=1)], config, torch.device("cpu"))
    policy.save(tmp_path / "base", {"task": "lift", "robot": "Panda"})
    manifest_path = tmp_path / "base" / POLICY_FILE
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["chunk"]
    manifest_path.write_text(json.dumps(manifest))
    loaded, _ = load_policy(tmp_path / "base", device="cpu")
    obs = {"observation.state": np.arange(4, dtype=np.float32)}
    policy.reset()
    loaded.reset()
    np.testing.assert_allclose(loaded.act(obs), policy.act(obs), rtol=1e-6)
