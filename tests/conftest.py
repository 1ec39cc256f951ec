"""Test-suite setup shared by every test directory."""

import os

import torch

if not torch.cuda.is_available():
    # Without CUDA the Triton kernels are tested under the interpreter. Triton reads this when it
    # is first imported (tensordict and torchrl import it), so it is set before any test module.
    os.environ.setdefault("TRITON_INTERPRET", "1")
