"""The TV-L1 inner iteration as two fused Triton kernels: what `tvl1_torch.inner_iteration` does in
a dozen PyTorch operations, each a pass over memory, in two passes.

Per pixel an iteration reads the flow (2 floats), the dual variables (4), the warped image's terms
(4) and writes the flow (2) and the dual variables (4): 16 floats, 64 bytes, plus the neighbours
(cache hits) and what the split into two kernels re-reads (the flow, 2 floats) = ~88 bytes, which
is what the memory-bandwidth estimate of docs/gpu_flow.md counts. Two kernels, not one, because
the dual update needs the new flow of the right and lower neighbours, which another program
computes: kernel 1 updates the flow in place (it reads only its own pixel's flow, and the dual
variables, which it does not write) and sums each pair's squared update; kernel 2 then updates the
dual variables in place (it reads only its own pixel's dual variables). A pair that has converged
(`active` 0) is skipped: its programs load and store nothing.

Without gamma only (the default); with gamma, and wherever Triton is missing, the PyTorch
operations run instead. Tested on the CPU through Triton's interpreter (TRITON_INTERPRET=1).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _flow_kernel(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, i1wx_ptr, i1wy_ptr, grad_ptr, rho_ptr,
                 active_ptr, error_ptr, height, width, l_t, theta, grad_eps, BLOCK: tl.constexpr):
    pair = tl.program_id(1)
    area = height * width
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = tl.load(active_ptr + pair) != 0
    mask = (offs < area) & live
    x = offs % width
    y = offs // width
    at = pair * area + offs
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
    d = tl.where(mask, (n1 - u1) * (n1 - u1) + (n2 - u2) * (n2 - u2), 0.0)
    tl.atomic_add(error_ptr + pair, tl.sum(d, axis=0), mask=live)


@triton.jit
def _dual_kernel(u1_ptr, u2_ptr, p11_ptr, p12_ptr, p21_ptr, p22_ptr, active_ptr, height, width, taut,
                 BLOCK: tl.constexpr):
    pair = tl.program_id(1)
    area = height * width
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = (offs < area) & (tl.load(active_ptr + pair) != 0)
    x = offs % width
    y = offs // width
    at = pair * area + offs
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


def fused_iteration(state: dict[str, torch.Tensor], params, active: torch.Tensor) -> torch.Tensor:
    """`tvl1_torch.inner_iteration` for gamma = 0, in place on `state`, in two kernels."""
    u1 = state["u1"]
    n, height, width = u1.shape
    error = torch.zeros(n, dtype=torch.float32, device=u1.device)
    flags = active.to(torch.int8)
    grid = (triton.cdiv(height * width, BLOCK), n)
    _flow_kernel[grid](u1, state["u2"], state["p11"], state["p12"], state["p21"], state["p22"], state["i1wx"],
                       state["i1wy"], state["grad"], state["rho_c"], flags, error, height, width,
                       params.lam * params.theta, params.theta, torch.finfo(torch.float32).eps, BLOCK=BLOCK)
    _dual_kernel[grid](u1, state["u2"], state["p11"], state["p12"], state["p21"], state["p22"], flags, height, width,
                       params.tau / params.theta, BLOCK=BLOCK)
    return error
