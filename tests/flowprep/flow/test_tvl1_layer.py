"""The learned TV-L1 layer (flowprep/flow/tvl1/layer.py): its gradients (gradcheck in double
precision), at initialisation its flow on real frames against tvl1-torch's flow with the same
parameters (one scale and a pyramid), and its parameters' checks (tvl1.params.layer_params)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from flowprep.extract.frames import to_gray
from flowprep.flow.tvl1.layer import TVL1Layer
from flowprep.flow.tvl1.params import layer_params
from flowprep.flow.tvl1.solver import TVL1Params, tvl1

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def real_pair(shared_data, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two consecutive grey frames of a real clip, resized to size x size."""
    clip = sorted(p for p in (shared_data / "clips").rglob("*.*") if p.suffix in (".avi", ".mp4"))[0]
    cap = cv2.VideoCapture(str(clip))
    frames = [cap.read()[1] for _ in range(4)][2:]
    cap.release()
    return tuple(cv2.resize(to_gray(f), (size, size), interpolation=cv2.INTER_AREA) for f in frames)


@pytest.mark.parametrize("iterations,warps", [(10, 1), (5, 2)])
def test_layer_at_initialisation_is_tvl1_torch_single_scale(shared_data, iterations, warps):
    first, second = real_pair(shared_data)
    a, b = (torch.from_numpy(x).float()[None] for x in (first, second))
    params = TVL1Params(nscales=1, warps=warps, outer_iterations=1, inner_iterations=iterations, epsilon=0.0,
                        median_filtering=1)
    reference = tvl1(a, b, params)
    with torch.no_grad():
        ours = TVL1Layer(iterations=iterations, warps=warps)(a[:, None], b[:, None])
    assert float(reference.abs().max()) > 0.1  # the frames move: the comparison is not of zeros
    # the step sizes are float32 tensors here, Python floats there: lambda * theta and tau / theta
    # may round one ulp apart; nothing else differs (the next test: with step sizes that do not round)
    assert torch.allclose(ours, reference, atol=1e-5, rtol=0), float((ours - reference).abs().max())


@pytest.mark.parametrize("iterations,warps,nscales", [(4, 2, 1), (4, 2, 3), (3, 2, 4)])
def test_layer_at_initialisation_is_tvl1_torch_bit_for_bit_with_its_pyramid(shared_data, iterations, warps, nscales):
    """Step sizes whose logarithm's exponential, products and quotients are exact in float32
    (powers of two): then the layer and tvl1-torch compute the same numbers, pyramid included."""
    first, second = real_pair(shared_data)
    a, b = (torch.from_numpy(x).float()[None] for x in (first, second))
    steps = {"tau": 0.25, "lambda": 0.125, "theta": 0.5}
    reference = tvl1(a, b, TVL1Params(tau=0.25, lam=0.125, theta=0.5, nscales=nscales, warps=warps,
                                      outer_iterations=1, inner_iterations=iterations, epsilon=0.0,
                                      median_filtering=1))
    layer = TVL1Layer.from_params(layer_params({**steps, "nscales": nscales, "warps": warps,
                                                "inner_iterations": iterations}))
    with torch.no_grad():
        ours = layer(a[:, None], b[:, None])
    assert float(reference.abs().max()) > 0.5
    assert torch.equal(ours, reference), float((ours - reference).abs().max())


def test_layer_takes_feature_maps_channel_by_channel(shared_data):
    """Representation Flow's placement: C feature maps give 2C flow channels, channel c's the flow of map c."""
    first, second = real_pair(shared_data, 32)
    a, b = (torch.from_numpy(x).float() for x in (first, second))
    maps0, maps1 = torch.stack([a, a.flip(1), 0.5 * a]), torch.stack([b, b.flip(1), 0.5 * b])
    layer = TVL1Layer(iterations=3)
    with torch.no_grad():
        together = layer(maps0[None], maps1[None])
        alone = [layer(maps0[None, c:c + 1], maps1[None, c:c + 1]) for c in range(3)]
    assert together.shape == (1, 6, 32, 32)
    assert torch.allclose(together, torch.cat(alone, dim=1))


def test_gradcheck_on_a_small_double_input():
    """Gradients with respect to the frames and to every learnable parameter (theta, lambda, tau,
    the kernels), against finite differences."""
    torch.manual_seed(0)
    layer = TVL1Layer(iterations=2, warps=1).double()
    with torch.no_grad():  # away from the initial kernels, so that their identity taps matter too
        for p in layer.kernels.parameters():
            p.add_(0.1 * torch.randn_like(p))
    y, x = torch.meshgrid(torch.arange(7.0), torch.arange(8.0), indexing="ij")
    first = (40 * torch.sin(0.9 * x + 0.4 * y) + 100).double()[None, None]
    second = (40 * torch.sin(0.9 * (x - 0.6) + 0.4 * (y - 0.3)) + 100).double()[None, None]
    first = (first + torch.rand_like(first)).requires_grad_()
    second = (second + torch.rand_like(second)).requires_grad_()
    names = [n for n, _ in layer.named_parameters()]

    def run(f, s, *values):
        return torch.func.functional_call(layer, dict(zip(names, values)), (f, s))

    values = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(run, (first, second, *values), eps=1e-6, atol=1e-4, rtol=1e-3)


def test_layer_params_are_checked_in_one_line():
    assert layer_params()["inner_iterations"] == 10 and layer_params({"tau": "0.2"})["tau"] == 0.2
    for overrides, message in [({"iterations": 5}, "unknown learned flow layer parameter 'iterations'; accepted: tau"),
                               ({"warps": "two"}, "warps must be int, got 'two'"),
                               ({"theta": 0.0}, "theta must be positive, got 0.0"),
                               ({"nscales": 0}, "nscales must be at least 1, got 0"),
                               ({"scale_step": 1.0}, "scale_step must be between 0 and 1, got 1.0"),
                               ({"lr_scale": -1.0}, "lr_scale must be 0 or more")]:
        with pytest.raises(ValueError, match=message):
            layer_params(overrides)
