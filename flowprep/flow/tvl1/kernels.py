"""The TV-L1 inner iteration as two fused Triton kernels: what `solver.inner_iteration` does in
a dozen PyTorch operations, each a pass over memory, in two passes, and nothing else a launch.

Per pixel an iteration reads the flow (2 floats), the dual variables (4), the warped image's terms
(4) and writes the flow (2) and the dual variables (4): 16 floats, 64 bytes, plus the neighbours
(cache hits) and what the split into two kernels re-reads (the flow, 2 floats) = ~88 bytes, which
is what the memory-bandwidth estimate of docs/gpu_flow.md counts. Two kernels, not one, because
the dual update needs the new flow of the right and lower neighbours, which another program
computes: kernel 1 updates the flow in place (it reads only its own pixel's flow, and the dual
variables, which it does not write) and sums each pair's squared update; kernel 2 then updates the
dual variables in place (it reads only its own pixel's dual variables).

Everything else an iteration needs is folded into those two launches, so that a small batch is
not bound by launches (about 5-20 us each on a GPU): each pair's flags stay on the device between
iterations (`PairFlags`, two of each, alternating, because every program of a kernel must read
the value the previous kernel left): kernel 1 skips a converged pair and adds its squared update to
this iteration's error sum; kernel 2 (its first program of each pair) compares that sum with the
stopping threshold, writes the flag the next iteration reads, zeroes the next iteration's error
sum and counts the pair's iterations. The host never waits for them (solver.ConvergenceWatch).

Offsets are 64-bit (`pair * area` passes 2^31 at about 1,000 fields of 1080p), and a launch covers
at most 65,535 pairs (CUDA's limit on the grid's second dimension): `launch_plan` splits larger
batches into several launches.

The median filter that starts each outer iteration (5 x 5, OpenCV's default) is a third kernel, on
both flow components in one launch: 25 loads and a sorting network per pixel, where PyTorch's
unfold-and-median would copy every field 25 times over.

Without gamma only (the default); with gamma, and wherever Triton is missing, the PyTorch
operations run instead. Tested on the CPU through Triton's interpreter (TRITON_INTERPRET=1).
"""
from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import torch
import triton
import triton.language as tl

BLOCK = 1024
MEDIAN_BLOCK = 256  # 25 values a pixel live in registers: fewer pixels a program
GRID_Y_MAX = 65535  # CUDA's limit on a grid's second dimension (pairs a launch)
GRID_X_MAX = 2**31 - 1

# kernel launches by kernel, since the process started, and the rows of their grids (a row: one
# pair's programs): what tests and the benchmark count
LAUNCHES: Counter = Counter()
ROWS: Counter = Counter()
_LAUNCHING = [False]  # true while a kernel launches (the interpreter's own tensor copies are not the method's)


def launching() -> bool:
    return _LAUNCHING[0]


def launch_plan(pairs: int, area: int, block: int) -> list[tuple[int, tuple[int, int]]]:
    """(first pair, grid) of each launch that covers `pairs` fields of `area` pixels in blocks of
    `block`: one launch up to 65,535 pairs, more beyond, so no grid exceeds CUDA's limits."""
    per_pair = triton.cdiv(area, block)
    if per_pair > GRID_X_MAX:
        raise ValueError(f"a field of {area} pixels needs {per_pair} blocks of {block}, more than a grid holds")
    return [(first, (per_pair, min(GRID_Y_MAX, pairs - first))) for first in range(0, pairs, GRID_Y_MAX)]


def _launch(kernel, name: str, pairs: int, area: int, block: int, *args, **meta) -> None:
    for first, grid in launch_plan(pairs, area, block):
        LAUNCHES[name] += 1
        ROWS[name] += grid[1]
        _LAUNCHING[0] = True
        try:
            kernel[grid](*args, first, BLOCK=block, **meta)
        finally:
            _LAUNCHING[0] = False


@triton.jit
def _pair_base(first_pair, area):
    """The first element of this program's pair, 64-bit: pair * area passes 2^31 in large batches."""
    return (tl.program_id(1) + first_pair).to(tl.int64) * area


# the frame size and the first pair are not specialised on: one compiled kernel for every batch
@triton.jit
def _live_pair(pairs_ptr, first_pair):
    """This program's pair: its row of the grid is an entry of the list of pairs still iterating."""
    return tl.load(pairs_ptr + tl.program_id(1) + first_pair)


@triton.jit
def _pair_block(block, pair, height, width, BLOCK: tl.constexpr):
    """Block `block` of `pair`'s frame: which places are inside it, their columns and rows, and
    their 64-bit offsets in the batch."""
    area = height.to(tl.int64) * width
    offs = block * BLOCK + tl.arange(0, BLOCK)
    return offs < area, offs % width, offs // width, pair.to(tl.int64) * area + offs


@triton.jit
def _primal_step(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, i1wx_ptr, i1wy_ptr, grad_ptr, rho_ptr,
                 at, mask, x, y, width, l_t, theta, grad_eps):
    """TV-L1's flow update at the places `at` (one block of a pair), stored in place; returns each
    place's squared change (0 outside `mask`), whose sum is the pair's stopping error. The one body
    of _flow_kernel and of the coarse kernel's inner loop (Triton inlines it)."""
    left = mask & (x > 0)
    up = mask & (y > 0)
    u1 = tl.load(u1_ptr + at, mask=mask, other=0.0)
    u2 = tl.load(u2_ptr + at, mask=mask, other=0.0)
    gx = tl.load(i1wx_ptr + at, mask=mask, other=0.0)
    gy = tl.load(i1wy_ptr + at, mask=mask, other=0.0)
    grad = tl.load(grad_ptr + at, mask=mask, other=0.0)
    rho = tl.load(rho_ptr + at, mask=mask, other=0.0) + gx * u1 + gy * u2
    # thresholding step: towards the data term's minimum, clamped to +-l_t
    f = tl.where(grad > grad_eps, -rho / grad, 0.0)
    f = tl.where(rho < -l_t * grad, l_t, f)
    f = tl.where(rho > l_t * grad, -l_t, f)
    # divergence of the dual variables: backward differences, the value itself at the first row/column
    div1 = (tl.load(p11_ptr + at, mask=mask, other=0.0) - tl.load(p11_ptr + at - 1, mask=left, other=0.0)
            + tl.load(p12_ptr + at, mask=mask, other=0.0) - tl.load(p12_ptr + at - width, mask=up, other=0.0))
    div2 = (tl.load(p21_ptr + at, mask=mask, other=0.0) - tl.load(p21_ptr + at - 1, mask=left, other=0.0)
            + tl.load(p22_ptr + at, mask=mask, other=0.0) - tl.load(p22_ptr + at - width, mask=up, other=0.0))
    n1 = u1 + f * gx + theta * div1
    n2 = u2 + f * gy + theta * div2
    tl.store(u1_ptr + at, n1, mask=mask)
    tl.store(u2_ptr + at, n2, mask=mask)
    return tl.where(mask, (n1 - u1) * (n1 - u1) + (n2 - u2) * (n2 - u2), 0.0)


@triton.jit
def _dual_step(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, at, mask, x, y, width, height, taut):
    """TV-L1's dual update at the places `at` from the new flow, stored in place: the one body of
    _dual_kernel and of the coarse kernel's inner loop (Triton inlines it)."""
    right = mask & (x < width - 1)
    down = mask & (y < height - 1)
    # forward differences of the new flow, 0 in the last column and row
    u1 = tl.load(u1_ptr + at, mask=mask, other=0.0)
    u2 = tl.load(u2_ptr + at, mask=mask, other=0.0)
    u1x = tl.where(right, tl.load(u1_ptr + at + 1, mask=right, other=0.0) - u1, 0.0)
    u1y = tl.where(down, tl.load(u1_ptr + at + width, mask=down, other=0.0) - u1, 0.0)
    u2x = tl.where(right, tl.load(u2_ptr + at + 1, mask=right, other=0.0) - u2, 0.0)
    u2y = tl.where(down, tl.load(u2_ptr + at + width, mask=down, other=0.0) - u2, 0.0)
    n1 = 1.0 + taut * tl.sqrt(u1x * u1x + u1y * u1y)
    n2 = 1.0 + taut * tl.sqrt(u2x * u2x + u2y * u2y)
    tl.store(p11_ptr + at, (tl.load(p11_ptr + at, mask=mask, other=0.0) + taut * u1x) / n1, mask=mask)
    tl.store(p12_ptr + at, (tl.load(p12_ptr + at, mask=mask, other=0.0) + taut * u1y) / n1, mask=mask)
    tl.store(p21_ptr + at, (tl.load(p21_ptr + at, mask=mask, other=0.0) + taut * u2x) / n2, mask=mask)
    tl.store(p22_ptr + at, (tl.load(p22_ptr + at, mask=mask, other=0.0) + taut * u2y) / n2, mask=mask)


@triton.jit(do_not_specialize=["height", "width", "first_pair"])
def _flow_kernel(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, i1wx_ptr, i1wy_ptr, grad_ptr, rho_ptr,
                 active_ptr, error_ptr, pairs_ptr, height, width, l_t, theta, grad_eps, first_pair,
                 BLOCK: tl.constexpr):
    pair = _live_pair(pairs_ptr, first_pair)
    if tl.load(active_ptr + pair) == 0:
        return  # a stopped pair: nothing loaded, nothing stored
    mask, x, y, at = _pair_block(tl.program_id(0), pair, height, width, BLOCK)
    d = _primal_step(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, i1wx_ptr, i1wy_ptr, grad_ptr, rho_ptr,
                     at, mask, x, y, width, l_t, theta, grad_eps)
    tl.atomic_add(error_ptr + pair, tl.sum(d, axis=0))


@triton.jit(do_not_specialize=["height", "width", "first_pair"])
def _dual_kernel(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, active_ptr, next_active_ptr, error_ptr,
                 next_error_ptr, iterations_ptr, pairs_ptr, height, width, taut, scaled_epsilon, first_pair,
                 BLOCK: tl.constexpr):
    pair = _live_pair(pairs_ptr, first_pair)
    if tl.load(active_ptr + pair) == 0:
        # a stopped pair: its first program only clears the flag the next iteration reads (the
        # flags alternate: the other one was set two iterations ago), and nothing is loaded
        tl.store(next_active_ptr + pair, tl.zeros((), tl.int8), mask=tl.program_id(0) == 0)
        return
    mask, x, y, at = _pair_block(tl.program_id(0), pair, height, width, BLOCK)
    _dual_step(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, at, mask, x, y, width, height, taut)
    # the pair's bookkeeping, once (by its first program): the error sum is complete (kernel 1 has
    # ended), and no program of this kernel reads the next flag or the next error sum
    if tl.program_id(0) == 0:
        error = tl.load(error_ptr + pair)
        tl.store(next_active_ptr + pair, (error > scaled_epsilon).to(tl.int8))
        tl.store(next_error_ptr + pair, 0.0)
        tl.store(iterations_ptr + pair, tl.load(iterations_ptr + pair) + 1)


class PairFlags:
    """Each pair's loop state, on the device for a whole warping: whether it is still iterating
    and its error sums (two of each: an iteration reads one and writes the other), and how many
    iterations it ran."""

    def __init__(self, pairs: int, device: torch.device) -> None:
        # separate tensors, not rows of one: every pointer a kernel gets is aligned alike
        self.active = [torch.ones(pairs, dtype=torch.int8, device=device), torch.empty(pairs, dtype=torch.int8,
                                                                                        device=device)]
        self.error = [torch.zeros(pairs, dtype=torch.float32, device=device) for _ in range(2)]
        self.iterations = torch.zeros(pairs, dtype=torch.int32, device=device)
        self.parity = 0
        # the pairs the iterations' grid covers (int32, on the device): all at first, then those
        # the host last saw iterating (`keep_only`); a pair the list still holds after it stopped
        # costs its programs two loads
        self.pairs = all_pairs(pairs, device)

    @property
    def current(self) -> torch.Tensor:
        """The flags the next iteration reads (int8, 1: still iterating)."""
        return self.active[self.parity]

    def keep_only(self, live: np.ndarray) -> None:
        """Cover only the pairs of `live` ((pairs,) flags the host read; a stopped pair stays
        stopped, so the list only shrinks): one small copy when it shrinks, none otherwise."""
        indices = np.flatnonzero(live).astype(np.int32)
        if 0 < len(indices) < len(self.pairs):
            host = torch.from_numpy(indices)
            if self.pairs.device.type == "cuda":
                host = host.pin_memory()
            self.pairs = host.to(self.pairs.device, non_blocking=True)


@functools.lru_cache(maxsize=64)
def all_pairs(pairs: int, device: torch.device) -> torch.Tensor:
    """0 .. pairs - 1 (int32) on `device`: the first list of every warping, built once per batch size;
    never written to."""
    return torch.arange(pairs, dtype=torch.int32, device=device)


def fused_iteration(state: dict[str, torch.Tensor], params, flags: PairFlags, scaled_epsilon: float) -> None:
    """`solver.inner_iteration` for gamma = 0, in place on `state`, in two launches: the
    pairs of `flags.current` iterate, and the flags the next iteration reads are written."""
    u1 = state["u1"]
    _, height, width = u1.shape
    n = len(flags.pairs)  # the grid covers the pairs the host last saw iterating
    p = flags.parity
    _launch(_flow_kernel, "flow", n, height * width, BLOCK, u1, state["u2"], state["p11"], state["p12"], state["p21"],
            state["p22"], state["i1wx"], state["i1wy"], state["grad"], state["rho_c"], flags.active[p],
            flags.error[p], flags.pairs, height, width, params.lam * params.theta, params.theta,
            torch.finfo(torch.float32).eps)
    _launch(_dual_kernel, "dual", n, height * width, BLOCK, u1, state["u2"], state["p11"], state["p12"], state["p21"],
            state["p22"], flags.active[p], flags.active[1 - p], flags.error[p], flags.error[1 - p], flags.iterations,
            flags.pairs, height, width, params.tau / params.theta, scaled_epsilon)
    flags.parity = 1 - p


# The median of 25 values by a sorting network: Batcher's odd-even merge sort of 32 inputs (7 of
# them +inf), pruned to the 113 compare-exchanges that decide the 13th smallest. Generated once
# by a script that is not in the repository; tests/flowprep/flow/test_tvl1_torch.py rebuilds the
# network (median25_network) and checks these lines against it, and the kernel against torch.median.
@triton.jit
def _median25(src, base, x, y, height, width, near):
    v0 = tl.load(src + base + tl.minimum(tl.maximum(y + -2, 0), height - 1) * width + tl.minimum(tl.maximum(x + -2, 0), width - 1), mask=near, other=0.0)
    v1 = tl.load(src + base + tl.minimum(tl.maximum(y + -2, 0), height - 1) * width + tl.minimum(tl.maximum(x + -1, 0), width - 1), mask=near, other=0.0)
    v2 = tl.load(src + base + tl.minimum(tl.maximum(y + -2, 0), height - 1) * width + tl.minimum(tl.maximum(x + 0, 0), width - 1), mask=near, other=0.0)
    v3 = tl.load(src + base + tl.minimum(tl.maximum(y + -2, 0), height - 1) * width + tl.minimum(tl.maximum(x + 1, 0), width - 1), mask=near, other=0.0)
    v4 = tl.load(src + base + tl.minimum(tl.maximum(y + -2, 0), height - 1) * width + tl.minimum(tl.maximum(x + 2, 0), width - 1), mask=near, other=0.0)
    v5 = tl.load(src + base + tl.minimum(tl.maximum(y + -1, 0), height - 1) * width + tl.minimum(tl.maximum(x + -2, 0), width - 1), mask=near, other=0.0)
    v6 = tl.load(src + base + tl.minimum(tl.maximum(y + -1, 0), height - 1) * width + tl.minimum(tl.maximum(x + -1, 0), width - 1), mask=near, other=0.0)
    v7 = tl.load(src + base + tl.minimum(tl.maximum(y + -1, 0), height - 1) * width + tl.minimum(tl.maximum(x + 0, 0), width - 1), mask=near, other=0.0)
    v8 = tl.load(src + base + tl.minimum(tl.maximum(y + -1, 0), height - 1) * width + tl.minimum(tl.maximum(x + 1, 0), width - 1), mask=near, other=0.0)
    v9 = tl.load(src + base + tl.minimum(tl.maximum(y + -1, 0), height - 1) * width + tl.minimum(tl.maximum(x + 2, 0), width - 1), mask=near, other=0.0)
    v10 = tl.load(src + base + tl.minimum(tl.maximum(y + 0, 0), height - 1) * width + tl.minimum(tl.maximum(x + -2, 0), width - 1), mask=near, other=0.0)
    v11 = tl.load(src + base + tl.minimum(tl.maximum(y + 0, 0), height - 1) * width + tl.minimum(tl.maximum(x + -1, 0), width - 1), mask=near, other=0.0)
    v12 = tl.load(src + base + tl.minimum(tl.maximum(y + 0, 0), height - 1) * width + tl.minimum(tl.maximum(x + 0, 0), width - 1), mask=near, other=0.0)
    v13 = tl.load(src + base + tl.minimum(tl.maximum(y + 0, 0), height - 1) * width + tl.minimum(tl.maximum(x + 1, 0), width - 1), mask=near, other=0.0)
    v14 = tl.load(src + base + tl.minimum(tl.maximum(y + 0, 0), height - 1) * width + tl.minimum(tl.maximum(x + 2, 0), width - 1), mask=near, other=0.0)
    v15 = tl.load(src + base + tl.minimum(tl.maximum(y + 1, 0), height - 1) * width + tl.minimum(tl.maximum(x + -2, 0), width - 1), mask=near, other=0.0)
    v16 = tl.load(src + base + tl.minimum(tl.maximum(y + 1, 0), height - 1) * width + tl.minimum(tl.maximum(x + -1, 0), width - 1), mask=near, other=0.0)
    v17 = tl.load(src + base + tl.minimum(tl.maximum(y + 1, 0), height - 1) * width + tl.minimum(tl.maximum(x + 0, 0), width - 1), mask=near, other=0.0)
    v18 = tl.load(src + base + tl.minimum(tl.maximum(y + 1, 0), height - 1) * width + tl.minimum(tl.maximum(x + 1, 0), width - 1), mask=near, other=0.0)
    v19 = tl.load(src + base + tl.minimum(tl.maximum(y + 1, 0), height - 1) * width + tl.minimum(tl.maximum(x + 2, 0), width - 1), mask=near, other=0.0)
    v20 = tl.load(src + base + tl.minimum(tl.maximum(y + 2, 0), height - 1) * width + tl.minimum(tl.maximum(x + -2, 0), width - 1), mask=near, other=0.0)
    v21 = tl.load(src + base + tl.minimum(tl.maximum(y + 2, 0), height - 1) * width + tl.minimum(tl.maximum(x + -1, 0), width - 1), mask=near, other=0.0)
    v22 = tl.load(src + base + tl.minimum(tl.maximum(y + 2, 0), height - 1) * width + tl.minimum(tl.maximum(x + 0, 0), width - 1), mask=near, other=0.0)
    v23 = tl.load(src + base + tl.minimum(tl.maximum(y + 2, 0), height - 1) * width + tl.minimum(tl.maximum(x + 1, 0), width - 1), mask=near, other=0.0)
    v24 = tl.load(src + base + tl.minimum(tl.maximum(y + 2, 0), height - 1) * width + tl.minimum(tl.maximum(x + 2, 0), width - 1), mask=near, other=0.0)
    v0, v1 = tl.minimum(v0, v1), tl.maximum(v0, v1)
    v2, v3 = tl.minimum(v2, v3), tl.maximum(v2, v3)
    v0, v2 = tl.minimum(v0, v2), tl.maximum(v0, v2)
    v1, v3 = tl.minimum(v1, v3), tl.maximum(v1, v3)
    v1, v2 = tl.minimum(v1, v2), tl.maximum(v1, v2)
    v4, v5 = tl.minimum(v4, v5), tl.maximum(v4, v5)
    v6, v7 = tl.minimum(v6, v7), tl.maximum(v6, v7)
    v4, v6 = tl.minimum(v4, v6), tl.maximum(v4, v6)
    v5, v7 = tl.minimum(v5, v7), tl.maximum(v5, v7)
    v5, v6 = tl.minimum(v5, v6), tl.maximum(v5, v6)
    v0, v4 = tl.minimum(v0, v4), tl.maximum(v0, v4)
    v2, v6 = tl.minimum(v2, v6), tl.maximum(v2, v6)
    v2, v4 = tl.minimum(v2, v4), tl.maximum(v2, v4)
    v1, v5 = tl.minimum(v1, v5), tl.maximum(v1, v5)
    v3, v7 = tl.minimum(v3, v7), tl.maximum(v3, v7)
    v3, v5 = tl.minimum(v3, v5), tl.maximum(v3, v5)
    v1, v2 = tl.minimum(v1, v2), tl.maximum(v1, v2)
    v3, v4 = tl.minimum(v3, v4), tl.maximum(v3, v4)
    v5, v6 = tl.minimum(v5, v6), tl.maximum(v5, v6)
    v8, v9 = tl.minimum(v8, v9), tl.maximum(v8, v9)
    v10, v11 = tl.minimum(v10, v11), tl.maximum(v10, v11)
    v8, v10 = tl.minimum(v8, v10), tl.maximum(v8, v10)
    v9, v11 = tl.minimum(v9, v11), tl.maximum(v9, v11)
    v9, v10 = tl.minimum(v9, v10), tl.maximum(v9, v10)
    v12, v13 = tl.minimum(v12, v13), tl.maximum(v12, v13)
    v14, v15 = tl.minimum(v14, v15), tl.maximum(v14, v15)
    v12, v14 = tl.minimum(v12, v14), tl.maximum(v12, v14)
    v13, v15 = tl.minimum(v13, v15), tl.maximum(v13, v15)
    v13, v14 = tl.minimum(v13, v14), tl.maximum(v13, v14)
    v8, v12 = tl.minimum(v8, v12), tl.maximum(v8, v12)
    v10, v14 = tl.minimum(v10, v14), tl.maximum(v10, v14)
    v10, v12 = tl.minimum(v10, v12), tl.maximum(v10, v12)
    v9, v13 = tl.minimum(v9, v13), tl.maximum(v9, v13)
    v11, v15 = tl.minimum(v11, v15), tl.maximum(v11, v15)
    v11, v13 = tl.minimum(v11, v13), tl.maximum(v11, v13)
    v9, v10 = tl.minimum(v9, v10), tl.maximum(v9, v10)
    v11, v12 = tl.minimum(v11, v12), tl.maximum(v11, v12)
    v13, v14 = tl.minimum(v13, v14), tl.maximum(v13, v14)
    v0, v8 = tl.minimum(v0, v8), tl.maximum(v0, v8)
    v4, v12 = tl.minimum(v4, v12), tl.maximum(v4, v12)
    v4, v8 = tl.minimum(v4, v8), tl.maximum(v4, v8)
    v2, v10 = tl.minimum(v2, v10), tl.maximum(v2, v10)
    v6, v14 = tl.minimum(v6, v14), tl.maximum(v6, v14)
    v6, v10 = tl.minimum(v6, v10), tl.maximum(v6, v10)
    v2, v4 = tl.minimum(v2, v4), tl.maximum(v2, v4)
    v6, v8 = tl.minimum(v6, v8), tl.maximum(v6, v8)
    v10, v12 = tl.minimum(v10, v12), tl.maximum(v10, v12)
    v1, v9 = tl.minimum(v1, v9), tl.maximum(v1, v9)
    v5, v13 = tl.minimum(v5, v13), tl.maximum(v5, v13)
    v5, v9 = tl.minimum(v5, v9), tl.maximum(v5, v9)
    v3, v11 = tl.minimum(v3, v11), tl.maximum(v3, v11)
    v7, v15 = tl.minimum(v7, v15), tl.maximum(v7, v15)
    v7, v11 = tl.minimum(v7, v11), tl.maximum(v7, v11)
    v3, v5 = tl.minimum(v3, v5), tl.maximum(v3, v5)
    v7, v9 = tl.minimum(v7, v9), tl.maximum(v7, v9)
    v11, v13 = tl.minimum(v11, v13), tl.maximum(v11, v13)
    v1, v2 = tl.minimum(v1, v2), tl.maximum(v1, v2)
    v3, v4 = tl.minimum(v3, v4), tl.maximum(v3, v4)
    v5, v6 = tl.minimum(v5, v6), tl.maximum(v5, v6)
    v7, v8 = tl.minimum(v7, v8), tl.maximum(v7, v8)
    v9, v10 = tl.minimum(v9, v10), tl.maximum(v9, v10)
    v11, v12 = tl.minimum(v11, v12), tl.maximum(v11, v12)
    v13, v14 = tl.minimum(v13, v14), tl.maximum(v13, v14)
    v16, v17 = tl.minimum(v16, v17), tl.maximum(v16, v17)
    v18, v19 = tl.minimum(v18, v19), tl.maximum(v18, v19)
    v16, v18 = tl.minimum(v16, v18), tl.maximum(v16, v18)
    v17, v19 = tl.minimum(v17, v19), tl.maximum(v17, v19)
    v17, v18 = tl.minimum(v17, v18), tl.maximum(v17, v18)
    v20, v21 = tl.minimum(v20, v21), tl.maximum(v20, v21)
    v22, v23 = tl.minimum(v22, v23), tl.maximum(v22, v23)
    v20, v22 = tl.minimum(v20, v22), tl.maximum(v20, v22)
    v21, v23 = tl.minimum(v21, v23), tl.maximum(v21, v23)
    v21, v22 = tl.minimum(v21, v22), tl.maximum(v21, v22)
    v16, v20 = tl.minimum(v16, v20), tl.maximum(v16, v20)
    v18, v22 = tl.minimum(v18, v22), tl.maximum(v18, v22)
    v18, v20 = tl.minimum(v18, v20), tl.maximum(v18, v20)
    v17, v21 = tl.minimum(v17, v21), tl.maximum(v17, v21)
    v19, v23 = tl.minimum(v19, v23), tl.maximum(v19, v23)
    v19, v21 = tl.minimum(v19, v21), tl.maximum(v19, v21)
    v17, v18 = tl.minimum(v17, v18), tl.maximum(v17, v18)
    v19, v20 = tl.minimum(v19, v20), tl.maximum(v19, v20)
    v21, v22 = tl.minimum(v21, v22), tl.maximum(v21, v22)
    v16, v24 = tl.minimum(v16, v24), tl.maximum(v16, v24)
    v20, v24 = tl.minimum(v20, v24), tl.maximum(v20, v24)
    v18, v20 = tl.minimum(v18, v20), tl.maximum(v18, v20)
    v22, v24 = tl.minimum(v22, v24), tl.maximum(v22, v24)
    v19, v21 = tl.minimum(v19, v21), tl.maximum(v19, v21)
    v17, v18 = tl.minimum(v17, v18), tl.maximum(v17, v18)
    v19, v20 = tl.minimum(v19, v20), tl.maximum(v19, v20)
    v21, v22 = tl.minimum(v21, v22), tl.maximum(v21, v22)
    v23, v24 = tl.minimum(v23, v24), tl.maximum(v23, v24)
    v0, v16 = tl.minimum(v0, v16), tl.maximum(v0, v16)
    v8, v24 = tl.minimum(v8, v24), tl.maximum(v8, v24)
    v8, v16 = tl.minimum(v8, v16), tl.maximum(v8, v16)
    v4, v20 = tl.minimum(v4, v20), tl.maximum(v4, v20)
    v12, v20 = tl.minimum(v12, v20), tl.maximum(v12, v20)
    v12, v16 = tl.minimum(v12, v16), tl.maximum(v12, v16)
    v2, v18 = tl.minimum(v2, v18), tl.maximum(v2, v18)
    v10, v18 = tl.minimum(v10, v18), tl.maximum(v10, v18)
    v6, v22 = tl.minimum(v6, v22), tl.maximum(v6, v22)
    v6, v10 = tl.minimum(v6, v10), tl.maximum(v6, v10)
    v10, v12 = tl.minimum(v10, v12), tl.maximum(v10, v12)
    v1, v17 = tl.minimum(v1, v17), tl.maximum(v1, v17)
    v9, v17 = tl.minimum(v9, v17), tl.maximum(v9, v17)
    v5, v21 = tl.minimum(v5, v21), tl.maximum(v5, v21)
    v13, v21 = tl.minimum(v13, v21), tl.maximum(v13, v21)
    v13, v17 = tl.minimum(v13, v17), tl.maximum(v13, v17)
    v3, v19 = tl.minimum(v3, v19), tl.maximum(v3, v19)
    v11, v19 = tl.minimum(v11, v19), tl.maximum(v11, v19)
    v7, v23 = tl.minimum(v7, v23), tl.maximum(v7, v23)
    v7, v11 = tl.minimum(v7, v11), tl.maximum(v7, v11)
    v11, v13 = tl.minimum(v11, v13), tl.maximum(v11, v13)
    v11, v12 = tl.minimum(v11, v12), tl.maximum(v11, v12)
    return v12


@triton.jit(do_not_specialize=["height", "width", "first_pair"])
def _median5_kernel(src1, dst1, src2, dst2, active_ptr, height, width, first_pair, BLOCK: tl.constexpr):
    pair = tl.program_id(1) + first_pair
    area = height.to(tl.int64) * width
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < area
    x = offs % width
    y = offs // width
    base = _pair_base(first_pair, area)
    live = tl.load(active_ptr + pair) != 0  # a converged pair keeps its flow
    near = inside & live
    center = tl.load(src1 + base + offs, mask=inside, other=0.0)
    tl.store(dst1 + base + offs, tl.where(live, _median25(src1, base, x, y, height, width, near), center), mask=inside)
    center = tl.load(src2 + base + offs, mask=inside, other=0.0)
    tl.store(dst2 + base + offs, tl.where(live, _median25(src2, base, x, y, height, width, near), center), mask=inside)


def median5(u1: torch.Tensor, u2: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cv::medianBlur(u, 5) (edges replicated) of each (H, W) field of u1 and u2 for the pairs
    whose `active` flag (int8) is set; the others as they are. One launch for both."""
    n, height, width = u1.shape
    out1, out2 = torch.empty_like(u1), torch.empty_like(u2)
    _launch(_median5_kernel, "median", n, height * width, MEDIAN_BLOCK, u1, out1, u2, out2, active, height, width)
    return out1, out2


# --- the coarse levels: a whole warping in one launch ---------------------------------------------
COARSE_AREA = 64 * 80  # levels of at most this many pixels (the four coarsest at 340x256) run this way
# a program walks its pair in blocks of 512 pixels with 8 warps: 128 registers a thread and no spill
# for sm_90 (ptxas -v; tests/flowprep/flow/test_gpu_paths.py). Blocks of 1024 with 4 warps needed 255
# and spilt 304 bytes; 1024 with 8, 238 registers (one program an SM)
COARSE_BLOCK = 512
COARSE_WARPS = 8


@triton.jit(do_not_specialize=["height", "width", "outer", "inner", "first_pair"])
def _coarse_warping_kernel(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, i1wx_ptr, i1wy_ptr, grad_ptr, rho_ptr,
                           m1_ptr, m2_ptr, iterations_ptr, height, width, l_t, theta, grad_eps, taut, scaled_epsilon,
                           outer, inner, first_pair, MEDIAN: tl.constexpr, BLOCK: tl.constexpr):
    """Every outer and inner iteration of one warping of one pair, in one program: the pair's
    level is small enough to walk in a few blocks, and a barrier between the passes stands for
    the launches that separate the kernels above (what a pass writes, the next reads from the
    neighbours). The same arithmetic as _flow_kernel, _dual_kernel and _median5_kernel."""
    pair = tl.program_id(0) + first_pair
    area = height.to(tl.int64) * width
    base = pair.to(tl.int64) * area
    chunks = tl.cdiv(height * width, BLOCK)
    live = tl.full((), 1, tl.int32)
    count = tl.full((), 0, tl.int32)
    for _o in range(outer):
        if live != 0:  # noqa: SIM102  (the inner `if` is on a constexpr: compiled away)
            if MEDIAN:
                for c in range(chunks):
                    offs = c * BLOCK + tl.arange(0, BLOCK)
                    inside = offs < area
                    x = offs % width
                    y = offs // width
                    tl.store(m1_ptr + base + offs, _median25(u1_ptr, base, x, y, height, width, inside), mask=inside)
                    tl.store(m2_ptr + base + offs, _median25(u2_ptr, base, x, y, height, width, inside), mask=inside)
                tl.debug_barrier()
                for c in range(chunks):
                    offs = c * BLOCK + tl.arange(0, BLOCK)
                    inside = offs < area
                    tl.store(u1_ptr + base + offs, tl.load(m1_ptr + base + offs, mask=inside), mask=inside)
                    tl.store(u2_ptr + base + offs, tl.load(m2_ptr + base + offs, mask=inside), mask=inside)
                tl.debug_barrier()
        for _i in range(inner):
            if live != 0:
                error = tl.full((), 0.0, tl.float32)
                for c in range(chunks):
                    mask, x, y, at = _pair_block(c, pair, height, width, BLOCK)
                    error += tl.sum(_primal_step(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, i1wx_ptr,
                                                 i1wy_ptr, grad_ptr, rho_ptr, at, mask, x, y, width, l_t,
                                                 theta, grad_eps), axis=0)
                tl.debug_barrier()
                for c in range(chunks):
                    mask, x, y, at = _pair_block(c, pair, height, width, BLOCK)
                    _dual_step(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, at, mask, x, y, width, height, taut)
                tl.debug_barrier()
                count += 1
                live = (error > scaled_epsilon).to(tl.int32)
    tl.store(iterations_ptr + pair, tl.load(iterations_ptr + pair) + count)


def coarse_warping(state: dict[str, torch.Tensor], params, iterations: torch.Tensor, scaled_epsilon: float) -> None:
    """A whole warping of every pair of a coarse level (at most COARSE_AREA pixels), in place on
    `state`, in one launch (a pair a program); each pair's iterations are added to `iterations`."""
    u1 = state["u1"]
    n, height, width = u1.shape
    median = params.median_filtering == 5
    m1, m2 = (torch.empty_like(u1), torch.empty_like(u1)) if median else (u1, u1)
    for first in range(0, n, GRID_X_MAX):
        LAUNCHES["coarse"] += 1
        _LAUNCHING[0] = True
        try:
            _coarse_warping_kernel[(min(GRID_X_MAX, n - first),)](
                u1, state["u2"], state["p11"], state["p12"], state["p21"], state["p22"], state["i1wx"], state["i1wy"],
                state["grad"], state["rho_c"], m1, m2, iterations, height, width, params.lam * params.theta,
                params.theta, torch.finfo(torch.float32).eps, params.tau / params.theta, scaled_epsilon,
                params.outer_iterations, params.inner_iterations, first, MEDIAN=median, BLOCK=COARSE_BLOCK,
                num_warps=COARSE_WARPS)
        finally:
            _LAUNCHING[0] = False
