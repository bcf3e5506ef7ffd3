"""The parameters of dual TV-L1 and their defaults: one declaration for its two backends, `tvl1`
(OpenCV, methods.py) and `tvl1-torch` (PyTorch, solver.py), so that both start from one set."""
from __future__ import annotations

from flowprep.flow.backend import Param

# OpenCV's own defaults use a 5-level pyramid with scale step 0.8: the coarsest level is 0.41x
# the input, so displacements beyond ~10 px are lost (average endpoint error 6.4 px on the 9
# FlyingChairs pairs of shared/data/flow_gt). nscales=8 alone gives 4.8 px; with scale step 0.7
# the coarsest level is 0.08x the input and the error drops to 3.2 px, and real 340x256 video
# runs faster than with OpenCV's defaults, as the solver converges sooner from a better coarse
# estimate. From that start, 3 warpings per level instead of 5 give the same error, a third
# faster. `make bench-flow-params` measures these (docs/benchmarks.md, "Choosing the TV-L1 defaults").
TVL1_PARAMS = (
    Param("tau", float, 0.25, "time step of the numerical scheme"),
    Param("lambda", float, 0.15, "weight of the data term (smaller = smoother flow)"),
    Param("theta", float, 0.3, "tightness of the coupling between the two sub-problems"),
    Param("nscales", int, 8, "pyramid levels (OpenCV default 5; 8 handles large motion)"),
    Param("warps", int, 3, "warpings per pyramid level (OpenCV default 5)"),
    Param("epsilon", float, 0.01, "stopping threshold"),
    Param("inner_iterations", int, 30, "inner iterations per warping"),
    Param("outer_iterations", int, 10, "outer iterations per warping"),
    Param("scale_step", float, 0.7, "downscale factor between pyramid levels (OpenCV default 0.8)"),
    Param("gamma", float, 0.0, "weight of the illumination term"),
    Param("median_filtering", int, 5, "median filter size applied to the flow (1 = off)"),
)
