"""Regenerate requirements.lock from a venv where the pyproject ranges were resolved (pip check clean).

Only real installed distributions are locked: the ros-kilted-* wheels carry inner *.egg-info
packages (rclpy, std_msgs, ...) that are not on any index, so those are skipped.
Usage: VENV/bin/python scripts/freeze_lock.py > requirements.lock
"""

import importlib.metadata as md

HEADER = """# Exact versions that resolve together (pip check clean) on Python 3.12 (Debian 12 + pyenv, Ubuntu 24.04).
# Regenerate: install the ranges in pyproject.toml (+ extras) into a fresh venv, then
#   VENV/bin/python scripts/freeze_lock.py > requirements.lock
# scripts/bootstrap.sh installs these with --no-deps into a venv keyed by this file's hash."""

pins = {}
for dist in md.distributions():
    if not str(getattr(dist, "_path", "")).endswith(".dist-info"):
        continue
    name = dist.metadata["Name"]
    if name.lower().replace("_", "-") in {"robo-reward", "pip"}:
        continue
    pins[name.lower()] = f"{name}=={dist.version}"
print(HEADER)
print("\n".join(pins[k] for k in sorted(pins)))
