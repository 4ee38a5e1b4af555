#!/usr/bin/env bash
# The CUDA half of the tests and the GPU benchmarks, in one short call on a GPU machine.
#
#   OUT=runs/gpu bash bench/gpu_checks.sh
#
# Written for the lent H200 machines: their python3 already holds torch (CUDA build) but no package
# registry is reachable, so the few small packages robo_reward needs beyond it travel as wheels in
# .gpu_wheels/ (made here: `pip download --no-deps -d .gpu_wheels gymnasium farama-notifications dill
# open_clip_torch ftfy wcwidth`). On a machine with the project's venv, PYTHON=.venv/bin/python.
# Writes to $OUT: gpu.txt (device, driver, torch), tests.log, bench.log and the benchmarks' JSON — the CUDA
# figures with a CPU peer measured on the same machine in the same call.
set -uo pipefail
OUT=${OUT:-runs/gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MUJOCO_GL=egl

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"; } | tee "$OUT/gpu.txt"
if [ -d .gpu_wheels ]; then "$PYTHON" -m pip install -q --no-deps --no-index .gpu_wheels/*.whl 2>&1 | tail -n 3; fi

# Tests that run on CUDA: the [cuda] half of the device-parametrised ones and the CPU-vs-CUDA comparisons.
timeout 300 "$PYTHON" -m pytest -q -rs -p no:cacheprovider -k cuda \
    tests/test_rl_core.py tests/test_rewards_core.py tests/test_process_and_classifier.py 2>&1 | tee "$OUT/tests.log"

results=$(mktemp -d)
{ "$PYTHON" bench/bench_learner_throughput.py --devices cuda cpu --seconds 8 --output-dir "$results"
  for device in cuda cpu; do
      "$PYTHON" bench/bench_reward_throughput.py --device $device --seconds 5 --threads "$(nproc)" \
          --output-dir "$results"
  done; } 2>&1 | tee "$OUT/bench.log"
# The CPU peers are this GPU machine's CPUs, not the developer machine's: name them so.
for f in "$results"/*_cpu.json; do [ -e "$f" ] && mv "$f" "${f%_cpu.json}_gpu_host_cpu.json"; done
cp "$results"/*.json "$OUT"/
