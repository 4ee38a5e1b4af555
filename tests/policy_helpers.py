"""Tiny LeRobot policies built in-test (nothing can be downloaded here)."""

from pathlib import Path


def save_tiny_lerobot_base(kind: str, directory: Path, env_spec: dict, state_dim: int = 18, env_dim: int = 12,
                            act_dim: int = 7) -> Path:
    """A tiny ACT or Diffusion Policy built in-test from lerobot's own configs, saved as lerobot saves
    a checkpoint (policy + processors) inside a robo_reward policy directory."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    from robo_reward.rl.lerobot_policy import LEROBOT_KIND, PRETRAINED_SUBDIR
    from robo_reward.rl.policies import write_policy_manifest

    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,)),
              "observation.environment_state": PolicyFeature(type=FeatureType.ENV, shape=(env_dim,))}
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(act_dim,))}
    stats = {k: {"mean": torch.zeros(n), "std": torch.ones(n), "min": -torch.ones(n), "max": torch.ones(n)}
             for k, n in (("observation.state", state_dim), ("observation.environment_state", env_dim),
                          ("action", act_dim))}
    if kind == "act":
        from lerobot.policies.act.configuration_act import ACTConfig

        config = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=5, n_action_steps=5, dim_model=32,
                           n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1, use_vae=False,
                           pretrained_backbone_weights=None, device="cpu")
    else:
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

        config = DiffusionConfig(input_features=inputs, output_features=outputs, n_obs_steps=2, horizon=8,
                                 n_action_steps=4, down_dims=(16, 32), diffusion_step_embed_dim=16,
                                 num_train_timesteps=10, num_inference_steps=3, device="cpu")
    torch.manual_seed(0)
    policy = get_policy_class(kind)(config)
    preprocess, postprocess = make_pre_post_processors(config, dataset_stats=stats)
    out = directory / PRETRAINED_SUBDIR
    policy.save_pretrained(out)
    preprocess.save_pretrained(out)
    postprocess.save_pretrained(out)
    write_policy_manifest(directory, LEROBOT_KIND, env_spec, lerobot_policy=kind)
    return directory
