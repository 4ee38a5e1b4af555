"""Where a behaviour test runs: always on the CPU, and on CUDA too when the machine has a GPU, so a GPU
machine runs the same tests against the same expectations (ours skip only the CUDA half)."""

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
