"""Install from a clean clone: the time `scripts/bootstrap.sh` takes with nothing cached (a fresh venv
cache and an empty pip cache) and the size of the venv it builds, for one or more git revisions
(e.g. the last Python 3.11 + lerobot 0.4.4 commit and HEAD).

  python3 bench/bench_install.py                      # HEAD
  python3 bench/bench_install.py --rev e40cb5b~1 HEAD # before and after the move to Python 3.12

Debian packages are taken as installed (the bootstrap's first step finds them present). This
machine's pip also reads local wheel mirrors (/opt/pypi*, see `pip config list`): packages found
there are copied, not downloaded, so a machine that downloads everything takes longer.
Writes bench/results/install.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def install(rev: str, work: Path) -> dict:
    clone, cache, pip_cache = work / "clone", work / "venvs", work / "pip-cache"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", rev], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    env = {**os.environ, "ROBO_REWARD_CACHE": str(cache), "PIP_CACHE_DIR": str(pip_cache)}
    started = time.perf_counter()
    proc = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=clone, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bootstrap at {rev} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    venv = Path(proc.stdout.strip().splitlines()[-1])
    python = subprocess.run([str(venv / "bin/python"), "-c", "import sys; print(sys.version.split()[0])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    return {"rev": rev, "commit": commit, "python": python, "bootstrap_s": round(wall, 1),
            "venv_bytes": du_bytes(venv), "pip_cache_bytes": du_bytes(pip_cache) if pip_cache.exists() else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", nargs="+", default=["HEAD"])
    args = parser.parse_args()
    rows = []
    for rev in args.rev:
        work = Path(tempfile.mkdtemp(prefix="install-bench-"))
        try:
            rows.append(install(rev, work))
            print(json.dumps(rows[-1]), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "install.json").write_text(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "command": "bench/bench_install.py --rev "
        + " ".join(args.rev), "installs": rows}, indent=2))


if __name__ == "__main__":
    main()
