"""Shared pieces of the Triton kernels: the stable ``u - log1p(u)``, row tiling and launch checks.

Every kernel views its inputs as a contiguous ``[R, N]`` matrix of rows (a row is one transition of
``A`` values, or one chain of ``K·A`` values) and gives each program a ``[BLOCK_R, BLOCK_N]`` tile:
``BLOCK_N`` is ``N`` padded to the next power of two and masked, so a whole row sits in registers
and its sums are one ``tl.sum``. Computation is in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.interpreter import InterpretedFunction

__all__ = [
    "MAX_ROW_LENGTH",
    "check_launchable",
    "compute_dtype",
    "interpreted",
    "log_ratio_penalty",
    "row_tile",
    "split_float",
    "tile",
    "triton_dtype",
]

#: Longest row (``K·A`` in trajectory mode, ``A`` per step) a program holds in registers.
MAX_ROW_LENGTH = 16384
# Elements per program tile: enough rows per program to fill the warps when rows are short.
_TILE_ELEMENTS = 4096
_SUPPORTED = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@triton.jit
def _log1p(x):
    # Kahan's log1p from log: exact to a few ulps without a libdevice call (also interpretable).
    y = 1.0 + x
    z = y - 1.0
    return tl.where(z == 0.0, x, tl.log(y) * (x / tl.where(z == 0.0, 1.0, z)))


@triton.jit
def log_ratio_penalty(u):
    """``u - log(1 + u)`` as :func:`trudi.constraints.divergences.log_ratio_penalty` (series below 1e-2)."""
    small = tl.abs(u) < 1e-2
    us = tl.where(small, u, 0.0)
    # 1/3 and 1/5 as divisions keep float64 tiles exact (a float literal is a float32 constant).
    third = (us * 0.0 + 1.0) / 3.0
    fifth = (us * 0.0 + 1.0) / 5.0
    series = us * us * (0.5 - us * (third - us * (0.25 - fifth * us)))
    ul = tl.where(small, 1.0, u)
    return tl.where(small, series, ul - _log1p(ul))


@triton.jit
def row_tile(n_rows, n_cols, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's ``[BLOCK_R, BLOCK_N]`` tile: ``(rows, row_ok, mask, offs)``."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    mask = row_ok[:, None] & (cols < n_cols)[None, :]
    offs = rows.to(tl.int64)[:, None] * n_cols + cols[None, :]
    return rows, row_ok, mask, offs


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 accumulation for float32 and half inputs, float64 for float64 (as the reference)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def triton_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def split_float(value: float) -> tuple[float, float]:
    """``value = hi + lo`` with float32 ``hi`` and ``lo``: Triton passes Python floats as float32,
    so a float64 kernel rebuilds the bound from both halves (~48 bits)."""
    hi = float(torch.tensor(value, dtype=torch.float32))
    return hi, float(torch.tensor(value - hi, dtype=torch.float32))


def tile(n_rows: int, n_cols: int) -> tuple[int, int, int]:
    """``(BLOCK_R, BLOCK_N, num_warps)`` for rows of ``n_cols`` values."""
    block_n = triton.next_power_of_2(max(n_cols, 1))
    block_r = max(1, min(_TILE_ELEMENTS // block_n, 128, triton.next_power_of_2(max(n_rows, 1))))
    num_warps = 8 if block_r * block_n >= 4096 else 4
    return block_r, block_n, num_warps


def check_launchable(kernel, row_length: int, **tensors: Tensor) -> None:
    """Reject, with a message that names the fix, what the kernels cannot run (no host sync)."""
    first_name, first = next(iter(tensors.items()))
    for name, tensor in tensors.items():
        if tensor.dtype not in _SUPPORTED:
            raise ValueError(
                f"the Triton kernels take float16, bfloat16, float32 or float64; {name} has dtype "
                f"{tensor.dtype}"
            )
        if tensor.dtype != first.dtype:
            raise ValueError(
                f"{name} must have the dtype of {first_name} ({first.dtype}), got {tensor.dtype}"
            )
        if tensor.device != first.device:
            raise ValueError(
                f"{name} must be on the device of {first_name} ({first.device}), got {tensor.device}"
            )
    if row_length > MAX_ROW_LENGTH:
        raise ValueError(
            f"the Triton kernels hold one row in registers: a row has {row_length} values, more "
            f"than {MAX_ROW_LENGTH}; use backend='torch' (or mode='per_step')"
        )
    if first.device.type != "cuda" and not interpreted(kernel):
        raise RuntimeError(
            f"backend='triton' on {first.device.type} tensors runs under the Triton interpreter: set "
            "TRITON_INTERPRET=1 before triton is first imported (tensordict and torchrl import it), "
            "or use backend='auto'/'torch' (the torch reference) off CUDA"
        )


def interpreted(kernel) -> bool:
    """Whether ``kernel`` and Triton's own language functions (decorated when triton is first
    imported) both run under the interpreter; a mix fails inside the kernel."""
    return isinstance(kernel, InterpretedFunction) and isinstance(tl.sum, InterpretedFunction)
