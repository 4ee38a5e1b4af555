import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from robo_reward.cli import main  # noqa: E402


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
