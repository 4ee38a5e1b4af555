"""Write tests/data/lerobot044/: files made by the Python 3.11 + lerobot 0.4.4 stack, which the current
stack must still read (tests/test_data_and_cli.py):

  demos/  a two-episode Panda Lift LeRobotDataset (state only, horizon 30) written by `demos collect`
  act/    a tiny ACT checkpoint saved by lerobot 0.4.4 (policy + processors), in a policy directory
  act_actions.json  the actions that checkpoint chose, under lerobot 0.4.4, on the dataset's first
                    episode (observations in order, one episode, so its chunk queue is exercised)

They were written at commit 0a135a2, in observation format 1 (quaternions; robo_reward.envs.observations):
the test checks lerobot 0.6 still reads them, and that robo_reward refuses to train on or run them.
Run it with the old stack's interpreter and this checkout's code:
  PYTHONPATH=. MUJOCO_GL=egl /path/to/venv-py311-lerobot044/bin/python scripts/make_legacy_fixtures.py
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "lerobot044"
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from policy_helpers import save_tiny_lerobot_base

    from robo_reward.cli import main as cli
    from robo_reward.data.lerobot_io import load_demonstrations, read_env_spec
    from robo_reward.rl.policies import load_policy

    version = importlib.metadata.version("lerobot")
    if version != "0.4.4":
        raise SystemExit(f"run this with the lerobot 0.4.4 stack (this is lerobot {version})")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    assert cli(["demos", "collect", "--task", "lift", "--episodes", "2", "--horizon", "30", "--noise", "0.3",
                "--out", str(OUT / "demos"), "--quiet"]) == 0
    spec = read_env_spec(OUT / "demos")
    save_tiny_lerobot_base("act", OUT / "act", spec)
    policy, _ = load_policy(OUT / "act", "cpu")
    policy.reset()
    observations = load_demonstrations(OUT / "demos")[0].observations[:-1]
    actions = [policy.act(obs).tolist() for obs in observations]
    (OUT / "act_actions.json").write_text(json.dumps({"lerobot": version, "python": sys.version.split()[0],
                                                      "actions": np.round(actions, 7).tolist()}))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
