"""Dual TV-L1 optical flow in PyTorch, on many frame pairs at once (the `tvl1-torch` backend).

The algorithm is OpenCV's `DualTVL1OpticalFlow` (Zach, Pock and Bischof 2007, as Sanchez,
Meinhardt-Llopis and Facciolo describe it in IPOL 2013), step for step, so that the two agree to
float rounding: the same image pyramid (bilinear resizing by `scale_step`, as cv::resize
computes it, down to 16 pixels), the same warping (bicubic, zero outside the image), centred
gradients of the warped image, the thresholding step, forward differences and divergence with
OpenCV's boundaries, median filtering of the flow before each outer iteration, and the same
stopping rule: a warping ends when the squared update of the flow, summed over the image, falls
to epsilon^2 times its area, or after outer x inner iterations.

What is new is the batch: every tensor holds N pairs, (N, H, W). Pairs converge after different
numbers of iterations; each pair stops at its own iteration, as OpenCV would stop it, through a
per-pair mask (a converged pair's flow and dual variables stay as they were). Knowing whether
*all* pairs of the batch have converged, so that the loop can end, needs the device to report to
the host, which stalls a GPU's queue. With PyTorch's operations the host looks every
`check_every` iterations and drops the converged pairs from the work then; with the fused Triton
kernels (`kernels.py`, the default on CUDA) the flags stay on the device, a converged pair's
programs do nothing, and the host learns that all have stopped one window late, without waiting
(`ConvergenceWatch`; measured: benchmarks/bench_gpu_flow.py, docs/gpu_flow.md).

Every launch runs on the tensors' device (`device_context`): Triton launches on the current CUDA
device, which is not the tensors' on cuda:1 and up unless set.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from flowprep.flow.backend import check_batch
from flowprep.flow.tvl1.params import TVL1_PARAMS
from flowprep.flow.tvl1.transfers import TorchTransfers

log = logging.getLogger("flowprep")

MIN_SIZE = 16  # OpenCV stops the pyramid at the first level narrower or lower than this


_NAMES = {"lambda": "lam"}  # the registry's parameter names that are Python keywords, as fields here
_DEFAULTS = {_NAMES.get(p.name, p.name): p.default for p in TVL1_PARAMS}


@dataclass(frozen=True)
class TVL1Params:
    """The parameters of OpenCV's tvl1; the defaults are params.py's, which tvl1 takes too, so the two backends
    start from one set."""
    tau: float = _DEFAULTS["tau"]
    lam: float = _DEFAULTS["lam"]
    theta: float = _DEFAULTS["theta"]
    nscales: int = _DEFAULTS["nscales"]
    warps: int = _DEFAULTS["warps"]
    epsilon: float = _DEFAULTS["epsilon"]
    inner_iterations: int = _DEFAULTS["inner_iterations"]
    outer_iterations: int = _DEFAULTS["outer_iterations"]
    scale_step: float = _DEFAULTS["scale_step"]
    gamma: float = _DEFAULTS["gamma"]
    median_filtering: int = _DEFAULTS["median_filtering"]

    @classmethod
    def from_method(cls, params: Mapping[str, Any]) -> "TVL1Params":
        """From a flow method's resolved parameters (registry names)."""
        return cls(**{_NAMES.get(name, name): value for name, value in params.items()})

    def __post_init__(self) -> None:
        for name in ("nscales", "warps", "inner_iterations", "outer_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if not 0 < self.scale_step < 1:
            raise ValueError(f"scale_step must be between 0 and 1, got {self.scale_step!r}")
        if self.median_filtering > 1 and self.median_filtering % 2 == 0:
            raise ValueError(f"median_filtering must be 1 (off) or an odd size, got {self.median_filtering!r}")
        if self.theta <= 0 or self.tau <= 0:
            raise ValueError(f"tau and theta must be positive, got {self.tau!r} and {self.theta!r}")


# --- the pyramid ---------------------------------------------------------------------------------
def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(h, w) of every level, finest first, as cv::resize sizes them: round(size * scale_step),
    stopping before a level narrower or lower than 16 pixels."""
    sizes = [(height, width)]
    for _ in range(1, params.nscales):
        h, w = sizes[-1]
        nh, nw = round(h * params.scale_step), round(w * params.scale_step)  # cvRound: half to even
        if nh < MIN_SIZE or nw < MIN_SIZE:
            break
        sizes.append((nh, nw))
    return sizes


def _linear_taps(src: int, dst: int, scale: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cv::resize's bilinear taps along one axis: source index pairs and the weight of the second.
    They depend on the sizes only, and every batch of a frame size resizes between the same sizes:
    built once per axis and device (some 18 operations each, which per batch outnumbered the
    launches of the iterations themselves), then reused; never written to."""
    return _cached_taps(int(src), int(dst), float(scale), torch.device(device))


@functools.lru_cache(maxsize=256)
def _cached_taps(src: int, dst: int, scale: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.inference_mode(False):  # built under inference_mode, they could not be used where autograd records
        return _taps(src, dst, scale, device)


def _taps(src: int, dst: int, scale: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pos = (torch.arange(dst, dtype=torch.float64, device=device) + 0.5) * scale - 0.5
    first = torch.floor(pos)
    weight = (pos - first).float()
    first = first.long()
    weight = torch.where(first < 0, torch.zeros_like(weight), weight)
    first = first.clamp(min=0)
    weight = torch.where(first >= src - 1, torch.zeros_like(weight), weight)
    first = first.clamp(max=src - 1)
    return first, (first + 1).clamp(max=src - 1), weight


def resize_linear(x: torch.Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None) -> torch.Tensor:
    """Bilinear resize of (N, H, W) to `size` = (h, w) with cv::resize's geometry (pixel centres,
    clamped edges). `scale` is source pixels per destination pixel (y, x); by default the ratio of
    the sizes, as cv::resize uses when given a size, while a resize by a factor uses 1 / factor."""
    n, h, w = x.shape
    sy, sx = scale if scale is not None else (h / size[0], w / size[1])
    x0, x1, wx = _linear_taps(w, size[1], sx, x.device)
    y0, y1, wy = _linear_taps(h, size[0], sy, x.device)
    rows = x[:, :, x0] + (x[:, :, x1] - x[:, :, x0]) * wx  # horizontal pass first, as OpenCV does
    return rows[:, y0, :] + (rows[:, y1, :] - rows[:, y0, :]) * wy[:, None]


@functools.lru_cache(maxsize=64)
def _pixel_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels' y and x coordinates, (H, W) each: shape-only, built once per level and reused."""
    with torch.inference_mode(False):
        return torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                              torch.arange(width, device=device, dtype=dtype), indexing="ij")


# --- finite differences with OpenCV's boundaries ---------------------------------------------------
def centered_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the difference of the two neighbours; at the borders, half the one-sided difference."""
    padded = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx, dy


def forward_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, 0 in the last column (x) and the last row (y)."""
    dx = F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 1))
    dy = F.pad(x[:, 1:, :] - x[:, :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Backward differences (the negative adjoint of `forward_gradient`): v(x) - v(x-1), and v(0) at 0."""
    return v1 - F.pad(v1[:, :, :-1], (1, 0)) + v2 - F.pad(v2[:, :-1, :], (0, 0, 1, 0))


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """cv::medianBlur of float fields: the median of each size x size window, edges replicated."""
    r = size // 2
    padded = F.pad(x[:, None], (r, r, r, r), mode="replicate")
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # (N, 1, H, W, k, k)
    return windows.reshape(*x.shape, size * size).median(dim=-1).values


def warp(images: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """cv::remap(..., INTER_CUBIC) with a zero border of (N, C, H, W) images at (x + u1, y + u2)."""
    n, _, h, w = images.shape
    ys, xs = _pixel_grid(h, w, u1.device, u1.dtype)
    # normalised so that -1 and 1 are the centres of the first and last pixels (align_corners)
    grid = torch.stack([(xs + u1) * (2.0 / max(w - 1, 1)) - 1.0, (ys + u2) * (2.0 / max(h - 1, 1)) - 1.0], dim=-1)
    return F.grid_sample(images, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


# --- one scale ---------------------------------------------------------------------------------------
FIELDS = ("u1", "u2", "u3", "p11", "p12", "p21", "p22", "p31", "p32")  # what an iteration updates
CONSTANTS = ("i1wx", "i1wy", "grad", "rho_c")  # what a warping fixes


def threshold_step(rho: torch.Tensor, grad: torch.Tensor, l_t: float | torch.Tensor) -> torch.Tensor:
    """OpenCV's estimateV as a factor f of the warped gradient (v = u + f * grad I1w): the step to
    the data term's minimum, -rho / |grad|^2, clamped to +-l_t; 0 where the gradient vanishes.
    (The division where the gradient vanishes is by 1, its result unused: a division by 0 there
    would give the learned layer, layer.py, which backpropagates through this, NaN gradients;
    `l_t` may be a tensor, the layer's learnable lambda * theta.)"""
    steep = grad > torch.finfo(torch.float32).eps
    f = torch.where(steep, -rho / torch.where(steep, grad, 1.0), torch.zeros_like(rho))
    f = torch.where(rho < -l_t * grad, l_t, f)
    return torch.where(rho > l_t * grad, -l_t, f)


def vector_norm(ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
    """|(ux, uy)|, the dual update's normaliser."""
    return torch.sqrt(ux * ux + uy * uy)


@dataclass(frozen=True)
class Differences:
    """The finite differences an iteration applies to the flow and the dual variables:
    tvl1-torch's fixed ones by default; the learned flow layer (layer.py) gives learnable
    kernels and a norm whose gradient stays finite at 0."""
    gradient: Callable = forward_gradient
    divergence: Callable = divergence
    norm: Callable = vector_norm


FIXED_DIFFERENCES = Differences()


def inner_iteration(state: dict[str, torch.Tensor], params: TVL1Params, active: torch.Tensor,
                    ops: Differences = FIXED_DIFFERENCES) -> torch.Tensor:
    """One iteration, in place on `state` (FIELDS and CONSTANTS, (N, H, W) each; u3, p31, p32 only
    with gamma), for the pairs in `active` ((N,) bool; the others keep their state): the
    thresholding step (estimateV), the flow from it and the dual variables' divergence
    (estimateU), and the projected dual update (estimateDualVariables). Returns each pair's
    squared update of the flow summed over the image, (N,)."""
    s = state
    keep = active[:, None, None]
    rho = s["rho_c"] + s["i1wx"] * s["u1"] + s["i1wy"] * s["u2"]
    components = [("u1", "i1wx", "p11", "p12"), ("u2", "i1wy", "p21", "p22")]
    if params.gamma:
        rho = rho + params.gamma * s["u3"]
        components.append(("u3", None, "p31", "p32"))
    f = threshold_step(rho, s["grad"], params.lam * params.theta)
    error = torch.zeros(keep.shape[0], dtype=torch.float32, device=keep.device)
    for u, slope, pa, pb in components:
        step = f * (s[slope] if slope else params.gamma)
        new = torch.where(keep, s[u] + step + params.theta * ops.divergence(s[pa], s[pb]), s[u])
        error = error + ((new - s[u]) ** 2).sum(dim=(1, 2))
        s[u] = new
    taut = params.tau / params.theta
    for u, _, pa, pb in components:
        ux, uy = ops.gradient(s[u])
        norm = 1.0 + taut * ops.norm(ux, uy)
        s[pa] = torch.where(keep, (s[pa] + taut * ux) / norm, s[pa])
        s[pb] = torch.where(keep, (s[pb] + taut * uy) / norm, s[pb])
    return error


def median_step(state: dict[str, torch.Tensor], params: TVL1Params, active: torch.Tensor) -> None:
    """The median filtering OpenCV applies to u1 and u2 before each outer iteration."""
    if params.median_filtering > 1:
        keep = active[:, None, None]
        for u in ("u1", "u2"):
            state[u] = torch.where(keep, median_filter(state[u], params.median_filtering), state[u])


@dataclass(frozen=True)
class Solver:
    """How the iterations run: `check_every` iterations between looks at which pairs are still
    iterating, and the kernels of one iteration: PyTorch's operations (`fused` false: the host
    drops the converged pairs at each look, which waits for the device) or kernels.py's fused
    kernels (`fused`: the flags stay on the device; the look waits for nothing)."""

    check_every: int = 10
    iteration: Callable = inner_iteration
    median: Callable = median_step
    # if given, counts what the iterations cost: "pixel_iterations" (pixels of the pairs
    # iterating, summed over iterations, on the device), "median_pixels" (pixels median-filtered)
    # and, by level ("levels", (h, w) -> the same two and "sequential_iterations": iterations the
    # loop ran, whatever the batch, which is what a launch-bound device pays), and
    # "pair_iterations": (N,) the iterations each pair ran, all levels and warpings (the slowest
    # pair bounds a batch)
    stats: dict | None = None
    fused: bool = False
    # with `fused`: a level of at most kernels.COARSE_AREA pixels runs each warping in one
    # launch (a pair a program), not two launches an iteration
    coarse: bool = False


def solve_warping(state: dict[str, torch.Tensor], params: TVL1Params, solver: Solver) -> None:
    """The outer and inner iterations of one warping, each pair stopping by OpenCV's rule."""
    if solver.fused:
        return _solve_fused(state, params, solver)
    return _solve_eager(state, params, solver)


def _solve_eager(state: dict[str, torch.Tensor], params: TVL1Params, solver: Solver) -> None:
    """Every `check_every` iterations the converged pairs leave the working set, and the loop ends
    when none is left."""
    n = state["u1"].shape[0]
    area = state["u1"].shape[1] * state["u1"].shape[2]
    level = tuple(state["u1"].shape[1:])
    scaled_epsilon = params.epsilon * params.epsilon * area
    work = {k: v for k, v in state.items()}  # the pairs still iterating
    index = torch.arange(n, device=state["u1"].device)
    active = torch.ones(n, dtype=torch.bool, device=index.device)
    per_pair = torch.zeros(n, dtype=torch.int32, device=index.device) if solver.stats is not None else None
    count = 0
    try:
        for _ in range(params.outer_iterations):
            solver.median(work, params, active)
            if params.median_filtering > 1 and solver.stats is not None:
                _count(solver, level, "median_pixels", active.sum() * area)
            for _ in range(params.inner_iterations):
                if per_pair is not None:
                    _count(solver, level, "pixel_iterations", active.sum() * area)
                    per_pair[index] += active.to(torch.int32)
                error = solver.iteration(work, params, active)
                active = active & (error > scaled_epsilon)
                count += 1
                if count % solver.check_every == 0:
                    work, index, active = _compact(state, work, index, active)
                    if index.numel() == 0:
                        return
            # an outer iteration starts only for pairs still iterating; the others stopped for good
        _scatter(state, work, index)
    finally:
        _count(solver, level, "sequential_iterations", count)
        if per_pair is not None:
            _count_pairs(solver, per_pair)


class ConvergenceWatch:
    """Whether every pair of a batch has stopped, learnt one window late so that the host never
    drains the device's queue: `post` queues a copy of the flags into a pinned host buffer behind
    the work queued so far and records an event; `converged` reads the copy posted one window
    earlier, which the device finished long ago (the event only confirms it). Stopping a window
    late costs nothing but launches: a stopped pair's programs load and store nothing."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.host: torch.Tensor | None = None
        self.event = None

    def post(self, flags: torch.Tensor) -> None:
        if self.host is None:
            self.host = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=self.cuda)
        self.host.copy_(flags, non_blocking=self.cuda)
        if self.cuda:
            self.event = torch.cuda.Event()
            self.event.record()

    def converged(self) -> bool:
        if self.host is None:
            return False
        if self.event is not None:
            self.event.synchronize()
        return not self.host.numpy().any()  # numpy: a look at host memory, no device operation


def _solve_fused(state: dict[str, torch.Tensor], params: TVL1Params, solver: Solver) -> None:
    """All pairs stay in the batch (no compaction), the flags on the device
    (kernels.PairFlags); two launches an iteration, a copy of the flags to the host every
    `check_every`, the median's launch every outer iteration. A stopped pair's programs return
    before loading anything, and from the next look on (the host's flags are a window old) the
    iterations' grid leaves it out."""
    from flowprep.flow.tvl1.kernels import COARSE_AREA, PairFlags, coarse_warping

    u1 = state["u1"]
    n, height, width = u1.shape
    area, level = height * width, (height, width)
    if solver.coarse and area <= COARSE_AREA and params.median_filtering in (1, 5):
        iterations = torch.zeros(n, dtype=torch.int32, device=u1.device)
        coarse_warping(state, params, iterations, params.epsilon * params.epsilon * area)
        if solver.stats is not None:
            _count(solver, level, "pixel_iterations", iterations.sum() * area)
            _count(solver, level, "sequential_iterations", int(iterations.max()))  # (a wait: counting only)
            _count_pairs(solver, iterations)
        return
    flags = PairFlags(n, u1.device)
    watch = ConvergenceWatch(u1.device)
    scaled_epsilon = params.epsilon * params.epsilon * area
    count = 0
    for _ in range(params.outer_iterations):
        if params.median_filtering > 1 and solver.stats is not None:
            _count(solver, level, "median_pixels", flags.current.sum() * area)
        solver.median(state, params, flags)
        for _ in range(params.inner_iterations):
            solver.iteration(state, params, flags, scaled_epsilon)
            count += 1
            if count % solver.check_every == 0:
                if watch.converged():
                    break
                if watch.host is not None:  # the flags of a window ago: the grid drops the pairs stopped by then
                    flags.keep_only(watch.host.numpy())
                watch.post(flags.current)
        else:
            continue
        break
    if solver.stats is not None:
        _count(solver, level, "pixel_iterations", flags.iterations.sum() * area)
        _count(solver, level, "sequential_iterations", count)
        _count_pairs(solver, flags.iterations)


def fused_median_step(state: dict[str, torch.Tensor], params: TVL1Params, flags) -> None:
    """`median_step` on the fused path: the 5 x 5 median of both components in one launch (other
    sizes: PyTorch's operations, for the flagged pairs)."""
    if params.median_filtering <= 1:
        return
    if params.median_filtering == 5:
        from flowprep.flow.tvl1.kernels import median5

        state["u1"], state["u2"] = median5(state["u1"], state["u2"], flags.current)
        return
    median_step(state, params, flags.current.bool())


def _count(solver: Solver, level: tuple[int, int], name: str, step) -> None:
    """Add `step` (on the device: no wait) to the total and to the level's."""
    if solver.stats is not None:
        for counts in (solver.stats, solver.stats.setdefault("levels", {}).setdefault(level, {})):
            total = counts.get(name)
            counts[name] = step if total is None else total + step


def _count_pairs(solver: Solver, iterations: torch.Tensor) -> None:
    """Add a warping's iterations of each pair, (N,) on the device, to the batch's."""
    total = solver.stats.get("pair_iterations")
    solver.stats["pair_iterations"] = iterations.clone() if total is None else total + iterations


def _scatter(state: dict[str, torch.Tensor], work: dict[str, torch.Tensor], index: torch.Tensor) -> None:
    for k in FIELDS:
        if k in state and work[k] is not state[k]:  # (kernels that update in place need no copy)
            state[k][index] = work[k]


def _compact(state, work, index, active):
    """Write the converged pairs back and keep the others (one wait for the device)."""
    if bool(active.all()):
        return work, index, active
    _scatter(state, work, index)
    keep = active.nonzero().squeeze(1)
    index = index[keep]
    work = {k: v[keep] for k, v in work.items()}
    return work, index, torch.ones(index.numel(), dtype=torch.bool, device=index.device)


def warp_constants(state: dict[str, torch.Tensor], images: torch.Tensor, i0: torch.Tensor) -> None:
    """What a warping fixes (CONSTANTS), into `state`: I1 and its gradients (`images`, (N, 3, H, W))
    warped by the flow so far, the squared gradient and the data term's constant part."""
    i1w, i1wx, i1wy = warp(images, state["u1"], state["u2"]).unbind(1)
    state["i1wx"], state["i1wy"] = i1wx.contiguous(), i1wy.contiguous()
    state["grad"] = i1wx * i1wx + i1wy * i1wy
    state["rho_c"] = i1w - i1wx * state["u1"] - i1wy * state["u2"] - i0


def solve_scale(i0: torch.Tensor, i1: torch.Tensor, u: dict[str, torch.Tensor], params: TVL1Params,
                solver: Solver) -> None:
    """OpenCV's procOneScale for a batch: `warps` warpings of I1 towards I0, each iterated to
    convergence; the dual variables start at zero and carry over between warpings."""
    duals = ("p11", "p12", "p21", "p22") + (("p31", "p32") if params.gamma else ())
    state = {**u, **{k: torch.zeros_like(i0) for k in duals}}  # one fill each (a zero field and clones: one more)
    i1x, i1y = centered_gradient(i1)
    images = torch.stack([i1, i1x, i1y], dim=1)
    for _ in range(params.warps):
        warp_constants(state, images, i0)
        solve_warping(state, params, solver)
    for k in u:
        u[k] = state[k]


def tvl1(first: torch.Tensor, second: torch.Tensor, params: TVL1Params, solver: Solver = Solver()) -> torch.Tensor:
    """Flow from `first` to `second`, (N, H, W) float32 grey levels 0..255 each: (N, 2, H, W),
    x then y displacement in pixels."""
    if first.shape != second.shape or first.dim() != 3:
        raise ValueError(f"expected two (N, H, W) batches of one shape, got {tuple(first.shape)} and "
                         f"{tuple(second.shape)}")
    n, h, w = first.shape
    sizes = pyramid_sizes(h, w, params)
    step = params.scale_step
    # both frames of every pair resized together, (2N, H, W) (a resize's operations per level, not
    # two); the first N are the first frames, each half a contiguous view
    pyramid = [torch.cat([first, second]).float()]
    for size in sizes[1:]:
        pyramid.append(resize_linear(pyramid[-1], size, (1 / step, 1 / step)))
    u = {k: torch.zeros(n, *sizes[-1], dtype=torch.float32, device=first.device)
         for k in ("u1", "u2", "u3")[:3 if params.gamma else 2]}
    for level in range(len(sizes) - 1, -1, -1):
        solve_scale(pyramid[level][:n], pyramid[level][n:], u, params, solver)
        if level == 0:
            break
        u = finer_flow(u, sizes[level - 1], step)
    return torch.stack([u["u1"], u["u2"]], dim=1)


def finer_flow(u: dict[str, torch.Tensor], size: tuple[int, int], step: float) -> dict[str, torch.Tensor]:
    """The flow of the next finer level: resized, and its displacements scaled (u3 is not); u1 and
    u2 resized together ((2, N, h, w): each a contiguous view)."""
    n = u["u1"].shape[0]
    both = (resize_linear(torch.cat([u["u1"], u["u2"]]), size) * (1 / step)).view(2, n, *size)
    finer = {"u1": both[0], "u2": both[1]}
    if "u3" in u:
        finer["u3"] = resize_linear(u["u3"], size)
    return finer


# --- the backend ----------------------------------------------------------------------------------
KERNELS = ("auto", "triton", "compile", "eager")


def device_context(device) -> contextlib.AbstractContextManager:
    """What makes `device` the current CUDA device while the flow is computed: Triton launches on
    the current device, not on its tensors' (on cuda:1 a launch on device 0 cannot reach them).
    Nothing to do for the CPU, or for a bare "cuda" (the current device itself)."""
    if isinstance(device, str):
        device = torch.device(device)
    if getattr(device, "type", None) == "cuda" and getattr(device, "index", None) is not None:
        return torch.cuda.device(device.index)
    return contextlib.nullcontext()


def compile_errors() -> tuple[type, ...]:
    """The errors that mean "these kernels cannot be built here" (no C compiler, an unsupported
    GPU, too many registers or too much shared memory), raised before a kernel runs: the state
    it was given is untouched. Anything else (a CUDA error, a wrong device, a bug) is not one."""
    import subprocess

    types: list[type] = [subprocess.CalledProcessError]  # the launcher's C build failed
    try:
        from triton.compiler.errors import CompilationError
        from triton.runtime import errors as runtime_errors

        types.append(CompilationError)
        types += [getattr(runtime_errors, n) for n in ("OutOfResources", "PTXASError") if hasattr(runtime_errors, n)]
    except ImportError:
        pass
    try:
        from torch._dynamo.exc import BackendCompilerFailed

        types.append(BackendCompilerFailed)
    except ImportError:
        pass
    try:
        from torch._inductor.exc import InductorError

        types.append(InductorError)
    except ImportError:
        pass
    return tuple(types)


def is_compile_error(exc: BaseException) -> bool:
    if isinstance(exc, compile_errors()):
        return True
    # triton.runtime.build: "Failed to find C compiler. Please specify via CC ..."
    return isinstance(exc, RuntimeError) and "failed to find c" in str(exc).lower()


# torch.compile's backend for the `compile` path (a test puts a failing one here)
COMPILE_BACKEND = "inductor"


def solver_for(kernels: str, device: torch.device, params: TVL1Params, check_every: int,
               stats: dict | None) -> tuple[str, Solver]:
    """The path to run and its solver: Triton's fused kernels on CUDA (where Triton imports and
    gamma is 0), torch.compile's, or PyTorch's operations; `auto` picks the first that applies
    here and says why in one line when it has to fall back."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
    eager = Solver(check_every, inner_iteration, median_step, stats)
    if kernels == "eager" or (kernels == "auto" and device.type != "cuda"):
        return "eager", eager
    if params.gamma:
        log.warning("tvl1-torch: the fused kernels do not handle gamma != 0; running PyTorch operations")
        return "eager", eager
    if kernels == "compile":
        # compiled at the first call, where TorchTVL1 catches a failure and falls back
        return "compile", replace(eager, iteration=torch.compile(inner_iteration, dynamic=True, backend=COMPILE_BACKEND),
                                  median=torch.compile(median_step, dynamic=True, backend=COMPILE_BACKEND))
    try:
        from flowprep.flow.tvl1.kernels import fused_iteration
    except ImportError as exc:
        log.warning("tvl1-torch: Triton is not available (%s); running PyTorch operations", exc)
        return "eager", eager
    return "triton", Solver(check_every, fused_iteration, fused_median_step, stats, fused=True, coarse=True)


BYTES_PER_PIXEL = 160  # device memory a field's pixel needs at the peak, with a margin (check_gpu measures it)


def fields_for_memory(free_bytes: int, height: int, width: int, share: float = 0.8) -> int:
    """How many fields of height x width a first batch holds in `free_bytes` of device memory."""
    return max(1, int(free_bytes * share // (height * width * BYTES_PER_PIXEL)))


class TorchTVL1:
    """The `tvl1-torch` flow backend on one device: frame pairs in (numpy, uint8 grey), flow out,
    or flow mean-subtracted and quantised on the device (a quarter of the bytes to copy back).
    `path` says which way the iteration runs ("triton", "compile" or "eager", and why when a
    kernel could not be built here); a run's summary reports it."""

    def __init__(self, params: TVL1Params, device: str = "cpu", kernels: str = "auto", check_every: int | None = None,
                 stats: dict | None = None) -> None:
        self.params = params
        self.device = torch.device(device)
        # the device reports convergence to the host only every few iterations: with PyTorch's
        # operations a look stalls a GPU's queue (every 10; on the CPU it costs nothing: every
        # one); with the fused kernels it costs a small copy and no wait, but the loop learns of
        # convergence a window late, and each iteration past it costs two launches (every 5)
        self.path, self.solver = solver_for(kernels, self.device, params, check_every or 10, stats)
        if check_every is None:
            every = 5 if self.solver.fused else (10 if self.device.type == "cuda" else 1)
            self.solver = replace(self.solver, check_every=every)
        self.fallback: str | None = None  # why the path is eager when it was not asked to be

    def fields_that_fit(self, height: int, width: int) -> int | None:
        """Fields of height x width the device's free memory holds (None: not a CUDA device)."""
        if self.device.type != "cuda":
            return None
        free, _ = torch.cuda.mem_get_info(self.device)
        return fields_for_memory(free, height, width)

    def _attempt(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
        """The flow, or None when the kernels could not be built here (then the solver is PyTorch's
        operations from now on). Nothing is half done: a batch that fails is computed again from
        its frames, so an update a first kernel applied before a second failed is not applied twice."""
        try:
            return tvl1(a, b, self.params, self.solver)
        except Exception as exc:  # noqa: BLE001  narrowed below: only build failures fall back
            if self.path == "eager" or not is_compile_error(exc):
                raise
            self.fallback = f"{self.path} kernels failed to build: {' '.join(str(exc).split())[:200]}"
        log.warning("tvl1-torch on %s: the %s; running PyTorch operations (about 10x slower)", self.device,
                    self.fallback)
        self.path = "eager"
        self.solver = Solver(self.solver.check_every, inner_iteration, median_step, self.solver.stats)
        return None

    def _upload(self, first, second) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's frames on the device, uint8 (N, H, W) each, after `check_batch`."""
        first, second = np.asarray(first), np.asarray(second)
        check_batch(first, second)
        return tuple(torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True) for x in (first, second))

    def _device_fields(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        a, b = first.float(), second.float()
        fields = self._attempt(a, b)
        # a fallback computes the batch again outside the `except`: the failed attempt's memory is free
        return fields if fields is not None else tvl1(a, b, self.params, self.solver)

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """(N, H, W) uint8 frames -> (N, H, W, 2) float32 flow from each first to its second."""
        with device_context(self.device):
            return self._device_fields(*self._upload(first, second)).permute(0, 2, 3, 1).cpu().numpy()

    def codes(self, first: np.ndarray, second: np.ndarray, bound: float,
              mean_subtraction: bool) -> tuple[np.ndarray, np.ndarray]:
        """The fields as flowprep stores them: uint8 planes (N, 2, H, W), mean-subtracted (the
        means (N, 2) float32, or zeros) and quantised with `flowprep.format.quantize`'s rule."""
        with device_context(self.device):
            return self._codes(first, second, bound, mean_subtraction)

    def _codes(self, first, second, bound, mean_subtraction):
        codes, means = self.device_codes(*self._upload(first, second), bound, mean_subtraction)
        return codes.cpu().numpy(), means.cpu().numpy()

    def device_codes(self, first: torch.Tensor, second: torch.Tensor, bound: float,
                     mean_subtraction: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """`codes` of frames already on the device, (N, H, W) uint8 each: the codes and means, left
        there (the extraction's overlapped schedule downloads them on its copy stream)."""
        fields = self._device_fields(first, second)
        if mean_subtraction:
            means = fields.double().mean(dim=(2, 3)).float()
        else:
            means = torch.zeros(fields.shape[:2], dtype=torch.float32, device=fields.device)
        return quantize_on_device(fields, means, bound), means

    def transfers(self, bound: float, mean_subtraction: bool, max_fields: int):
        """The steps of the extraction's overlapped schedule on this device (transfers.py)."""
        return TorchTransfers(self, bound, mean_subtraction, max_fields, device_context)


def quantize_on_device(fields: torch.Tensor, means: torch.Tensor, bound: float) -> torch.Tensor:
    """`quantize_planes` of (N, 2, H, W) fields less their (N, 2) means: scaled, offset, rounded half
    to even and saturated to 0..255, as cv2.addWeighted does it."""
    scale = 255.0 / (2.0 * bound)
    shifted = fields * scale + ((bound - means) * scale)[:, :, None, None]
    return torch.round(shifted).clamp(0, 255).to(torch.uint8)
