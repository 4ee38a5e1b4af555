#!/usr/bin/env bash
# Installs everything robo_reward needs on a fresh Debian 12 (or Ubuntu 24.04) machine with Python 3.12:
#  1. Debian libraries for headless MuJoCo rendering (EGL/Mesa), OpenCV and video decoding (FFmpeg);
#  2. a virtual environment built from requirements.lock, cached OUTSIDE the clone and keyed by the
#     lock file's hash, so a second clone (or CI) reuses it in seconds;
#  3. this checkout installed into it in editable mode, and ./.venv pointing at it.
# Idempotent: every step is skipped when already done. Prints the venv path on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

# chromium: the labeling page's end-to-end test drives Debian's browser with Playwright
APT_PACKAGES=(libgl1 libglib2.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 ffmpeg chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[bootstrap] installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "[bootstrap] error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python 3.12 (lerobot >= 0.5 needs it; it is Ubuntu 24.04's, where ROS 2 Jazzy/Kilted run): $PYTHON,
# else python3.12 / python3 on PATH, else pyenv's
find_python() {
  local candidates=("${PYTHON:-}" python3.12 python3)
  local root
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  candidates+=("$root"/versions/3.12*/bin/python)
  for c in "${candidates[@]}"; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}
if ! PYTHON="$(find_python)"; then
  echo "[bootstrap] error: robo_reward needs Python 3.12 (none on PATH or in pyenv): install it (Ubuntu 24.04: python3; elsewhere: pyenv install 3.12) or set PYTHON=/path/to/python3.12" >&2
  exit 2
fi
# this machine's pip config lists local mirrors that may be absent: drop those warnings only
pip_quiet() { "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }
lock_hash="$( (cat requirements.lock; "$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
cache_root="${ROBO_REWARD_CACHE:-$HOME/.cache/robo_reward}"
venv="$cache_root/venv-$lock_hash"
if [ ! -f "$venv/.complete" ]; then
  # a venv without the marker is a broken earlier attempt: start over
  echo "[bootstrap] creating $venv from requirements.lock (first time: several minutes, ~7 GB)" >&2
  rm -rf "$venv"
  mkdir -p "$cache_root"
  "$PYTHON" -m venv "$venv"
  pip_quiet "$venv/bin/pip" install -q --upgrade pip
  pip_quiet "$venv/bin/pip" install -q --no-deps -r requirements.lock
  "$venv/bin/pip" check >&2
  touch "$venv/.complete"
fi
# editable install of this checkout (re-done when the venv last pointed at another clone)
if [ "$(cat "$venv/.project_path" 2>/dev/null)" != "$here" ]; then
  # setuptools' editable-install warnings are noise; show the log only if the install fails
  if ! log=$("$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$here" 2>&1); then
    echo "$log" >&2
    exit 1
  fi
  echo "$here" > "$venv/.project_path"
fi
ln -sfn "$venv" "$here/.venv"
echo "$venv"
