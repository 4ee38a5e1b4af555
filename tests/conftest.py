import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from robo_reward.cli import main


@pytest.fixture(scope="session")
def lift_demos(tmp_path_factory):
    """Six noisy scripted Panda Lift demos recorded through the CLI (shared by the tests)."""
    out = tmp_path_factory.mktemp("demos") / "lift"
    assert main(["demos", "collect", "--task", "lift", "--episodes", "6", "--noise", "0.2",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def lift_mlp_base(lift_demos, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "mlp"
    assert main(["base", "train", "--dataset", str(lift_demos), "--steps", "300", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def camera_demos(tmp_path_factory):
    """Four Panda Lift episodes (two cameras, 32 px) run to the time limit: successes and failures."""
    out = tmp_path_factory.mktemp("camdemos") / "lift"
    assert main(["demos", "collect", "--task", "lift", "--episodes", "4", "--noise", "1.0", "--horizon", "80",
                 "--keep-going", "--cameras", "agentview", "robot0_eye_in_hand", "--image-size", "32",
                 "--out", str(out), "--quiet"]) == 0
    return out
