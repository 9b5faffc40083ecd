"""PCSR's training forwards (the official phases: ``trains``) against its own eval paths, and what each
phase freezes."""

import pytest
import torch

import srlab
from srlab.errors import SrlabError


def _model(**args):
    torch.manual_seed(0)
    return srlab.create_model("pcsr_fsrcnn", scale=4, args={"refinement": False, **args})


def _eval_with(model, routing, x):
    model.eval()
    model.routing = routing
    with torch.no_grad():
        return model(x)


def test_phase1_forward_mixes_both_samplers_by_the_returned_probabilities():
    model = _model(trains="classifier")
    x = torch.rand(2, 3, 5, 7)
    sr, aux = model.train()(x)
    probs = aux["pcsr_probs"]
    assert sr.shape == (2, 3, 20, 28) and probs.shape == (2, 2, 20, 28)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2, 20, 28))
    light, heavy = _eval_with(model, "light", x), _eval_with(model, "heavy", x)
    assert torch.allclose(sr, probs[:, :1] * light + probs[:, 1:] * heavy, atol=1e-6)


def test_phase0_forward_is_the_heavy_network():
    model = _model(trains="backbone", routing="heavy")
    x = torch.rand(2, 3, 5, 7)
    sr = model.train()(x)
    assert isinstance(sr, torch.Tensor)
    assert torch.allclose(sr, _eval_with(model, "heavy", x), atol=1e-6)


@pytest.mark.parametrize(("trains", "frozen", "trained"), [
    ("backbone", ("light_sampler", "classifier"), ("encoder", "heavy_sampler")),
    ("classifier", ("encoder", "heavy_sampler"), ("light_sampler", "classifier")),
    ("all", (), ("encoder", "heavy_sampler", "light_sampler", "classifier")),
])
def test_each_phase_freezes_what_the_official_one_freezes(trains, frozen, trained):
    model = srlab.create_model("pcsr_carn", scale=4, args={
        "channels": 8, "trains": trains, "routing": "heavy" if trains == "backbone" else "classifier",
    }).train()
    for name in frozen:
        part = getattr(model, name)
        assert not part.training and not any(p.requires_grad for p in part.parameters()), name
    for name in trained:
        part = getattr(model, name)
        assert part.training and all(p.requires_grad for p in part.parameters()), name
    # the frozen CARN encoder keeps its BatchNorm statistics through a training forward
    before = {k: v.clone() for k, v in model.encoder.state_dict().items() if "running" in k}
    model(torch.rand(2, 3, 6, 6))
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) == ("encoder" in frozen)


def test_phase0_needs_the_heavy_routing_and_unknown_parts_are_refused():
    with pytest.raises(SrlabError, match="trains 'backbone' .* trains no classifier: set routing: heavy"):
        srlab.create_model("pcsr_carn", scale=4, args={"trains": "backbone"})
    with pytest.raises(SrlabError, match="trains must be one of all, backbone, classifier, got 'heavy'"):
        srlab.create_model("pcsr_carn", scale=4, args={"trains": "heavy"})
