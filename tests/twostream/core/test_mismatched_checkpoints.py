"""Checkpoints from elsewhere are input (issue 19): weights or an optimizer state whose tensors do
not fit the run's config are one-line CheckpointErrors, in-process and through evaluate and resume
(a sample of tests/support/reliability/tampered.py's scenarios)."""
from __future__ import annotations

import pytest
import torch

from tests.support.reliability import assert_held, tampered
from twostream.core.errors import CheckpointError
from twostream.streams.models import build_model


def test_checkpoint_weights_that_do_not_fit_the_config_are_one_line_errors():
    from twostream.core.checkpoint import load_weights

    model = build_model("resnet18", 3, 6, 0.5)
    wrong_backbone = build_model("resnet34", 3, 6, 0.5).state_dict()
    with pytest.raises(CheckpointError, match=r"c.pt: .* do not fit .*unexpected \('body.layer1.2"):
        load_weights(model, wrong_backbone, "c.pt")
    state = model.state_dict()
    wider = {**state, "classifier.weight": torch.zeros(8, 512), "classifier.bias": torch.zeros(8)}
    with pytest.raises(CheckpointError, match=r"'classifier.weight' is \[8, 512\], the config's model has \[6, 512\]"):
        load_weights(model, wider, "c.pt")
    load_weights(model, state, "c.pt")


def test_an_optimizer_state_that_does_not_fit_the_model_is_a_one_line_error():
    """torch loads a momentum buffer of another shape silently; the resumed run's first step then
    died with a RuntimeError traceback."""
    from twostream.core.checkpoint import load_optimizer_state

    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    saved = optimizer.state_dict()
    fresh = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    load_optimizer_state(fresh, saved, "c.pt")  # the same shapes load
    assert torch.equal(fresh.state_dict()["state"][0]["momentum_buffer"], saved["state"][0]["momentum_buffer"])
    edited = {**saved, "state": {**saved["state"], 0: {"momentum_buffer": torch.zeros(5, 4)}}}
    with pytest.raises(CheckpointError, match=r"c.pt: its optimizer's 'momentum_buffer' of parameter 0 is \[5, 4\], "
                                              r"the parameter is \[3, 4\]"):
        load_optimizer_state(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), edited, "c.pt")
    one_group_short = {**saved, "param_groups": [{**saved["param_groups"][0], "params": [0]}]}
    with pytest.raises(CheckpointError, match=r"for 1 parameter\(s\) in 1 group\(s\), the config's model has 2"):
        load_optimizer_state(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), one_group_short, "c.pt")
    with pytest.raises(CheckpointError, match="not an optimizer's state dict"):
        load_optimizer_state(fresh, [1, 2], "c.pt")


@pytest.mark.slow
def test_checkpoints_that_do_not_fit_their_config_are_refused_by_evaluate_and_resume(tampered_work):
    assert_held(tampered.mismatched_checkpoints(tampered_work))
