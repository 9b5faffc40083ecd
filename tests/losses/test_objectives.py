"""The objectives' contract and registry (srlab.losses.base) and their weighted sum (srlab.losses.weighted)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from srlab.errors import SrlabError
from srlab.losses import (
    LOSS_NAMES,
    LossInputs,
    Objective,
    WeightedObjective,
    build_objective,
    build_weighted_objective,
    objective_parameters,
    register_loss,
)
from srlab.losses.base import loss_class, loss_names

# Constructor arguments that make every objective cheap to build here (no VGG19 file on this machine).
CHEAP = {
    "content": {"random_init": True, "layers": ["conv1_2"]},
    "texture": {"random_init": True, "layers": ["conv1_1"]},
    "gan": {"discriminator_channels": 4},
    "contrastive": {"channels": 4},
    "aux_penalty": {"key": "ratio_loss"},
}


def _inputs(sr=None, hr=None, *, n=2, size=32, scale=2, uncertainty=None, aux=None) -> LossInputs:
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(n, 3, size, size, generator=g) if hr is None else hr
    sr = torch.rand(hr.shape, generator=g) if sr is None else sr
    lr = torch.rand(hr.shape[0], 3, hr.shape[-2] // scale, hr.shape[-1] // scale, generator=g)
    return LossInputs(sr=sr, hr=hr, lr=lr, scale=scale, uncertainty=uncertainty, aux=aux or {})


# What a routing model's training forward hands the objectives that need it (LossInputs.aux).
AUX = {
    "class_loss": {"class_probs": torch.full((2, 3), 1 / 3)},
    "average_loss": {"class_probs": torch.full((2, 3), 1 / 3)},
    "aux_penalty": {"ratio_loss": torch.tensor(0.01)},
    "pcsr_average": {"pcsr_probs": torch.full((2, 2, 32, 32), 0.5)},
    "exit_l1": {"exit_srs": torch.rand(2, 2, 3, 32, 32)},
    "diffusion": {"prediction": torch.zeros(2, 3, 32, 32), "target": torch.ones(2, 3, 32, 32)},
}


def test_names_come_from_the_registry():
    assert LOSS_NAMES == loss_names()
    assert LOSS_NAMES[:3] == ("l1", "l2", "charbonnier")  # the pixel losses are listed first
    assert set(LOSS_NAMES) >= {"udl", "content", "texture", "tv", "gan", "contrastive"}


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_interface_of_every_objective(name):
    cls = loss_class(name)
    assert issubclass(cls, Objective)
    assert isinstance(cls.needs_uncertainty, bool) and isinstance(cls.adversarial, bool)
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, (name, p.name)
        assert p.default is not inspect.Parameter.empty, (name, p.name)
    objective = build_objective(name, params=CHEAP.get(name))
    s = torch.zeros(2, 1, 32, 32) if objective.needs_uncertainty else None
    value = objective(_inputs(uncertainty=s, aux=AUX.get(name)))
    assert value.dim() == 0 and torch.isfinite(value)
    assert objective.adversarial == (name == "gan")
    assert objective.needs_uncertainty == (name == "udl")
    if objective.adversarial:
        assert isinstance(objective.discriminator, torch.nn.Module)
        assert objective.discriminator_loss(_inputs()).dim() == 0


def test_pixel_objectives_values():
    inputs = _inputs(sr=torch.zeros(1, 3, 4, 4), hr=torch.full((1, 3, 4, 4), 0.5))
    assert build_objective("l1")(inputs).item() == pytest.approx(0.5)
    assert build_objective("l2")(inputs).item() == pytest.approx(0.25)
    assert build_objective("charbonnier")(inputs).item() == pytest.approx(math.sqrt(0.25 + 1e-6))
    assert build_objective("charbonnier", params={"eps": 0.1})(inputs).item() == pytest.approx(math.sqrt(0.25 + 0.01))


def test_unknown_name_and_parameter_list_the_valid_ones():
    with pytest.raises(SrlabError, match="unknown loss 'l3': use one of l1, l2, charbonnier, udl, content"):
        build_objective("l3")
    with pytest.raises(SrlabError, match="unknown parameter 'layer' for loss 'content': valid parameters are feature_weights, layers"):
        build_objective("content", params={"layer": ["conv5_4"]})
    with pytest.raises(SrlabError, match="valid parameters are none"):
        build_objective("l1", params={"eps": 1.0})
    assert objective_parameters("udl") == ("stage",)
    with pytest.raises(SrlabError, match="must be a mapping"):
        build_objective("udl", params=["stage", "weighted"])


def test_bad_parameter_values_are_srlab_errors():
    with pytest.raises(SrlabError, match="eps"):
        build_objective("charbonnier", params={"eps": -1})
    with pytest.raises(SrlabError, match="stage"):
        build_objective("udl", params={"stage": "both"})
    with pytest.raises(SrlabError, match="gan_type"):
        build_objective("gan", params={"gan_type": "wgan"})


def test_weighted_objective_total_and_terms():
    objective = build_weighted_objective([("l1", 1.0, None), ("l2", 0.5, None), ("l1", 2.0, None)])
    assert isinstance(objective, WeightedObjective)
    inputs = _inputs(sr=torch.zeros(1, 3, 4, 4), hr=torch.full((1, 3, 4, 4), 0.5))
    total, terms = objective(inputs)
    assert set(terms) == {"l1", "l2", "l1_2"}
    assert terms["l1"].item() == pytest.approx(0.5) and terms["l2"].item() == pytest.approx(0.25)
    assert total.item() == pytest.approx(1.0 * 0.5 + 0.5 * 0.25 + 2.0 * 0.5)
    assert not any(t.requires_grad for t in terms.values())
    assert not objective.needs_uncertainty and not objective.adversarial
    with pytest.raises(SrlabError, match="no adversarial loss term"):
        objective.discriminator_loss(inputs)


def test_weighted_objective_flags_and_discriminator():
    objective = build_weighted_objective([("l1", 1.0, None), ("gan", 5e-3, {"discriminator_channels": 4}),
                                          ("udl", 1.0, {"stage": "weighted"})])
    assert objective.adversarial and objective.needs_uncertainty
    assert list(objective.adversarial_objectives()) == ["gan"]
    inputs = _inputs(uncertainty=torch.zeros(2, 1, 32, 32))
    total, terms = objective(inputs)
    assert set(terms) == {"l1", "gan", "udl"}
    assert objective.discriminator_loss(inputs).dim() == 0


def test_weighted_objective_rejects_bad_terms():
    with pytest.raises(SrlabError, match="weight must be a number >= 0"):
        build_weighted_objective([("l1", -1.0, None)])
    with pytest.raises(SrlabError, match="at least one"):
        build_weighted_objective([])
    with pytest.raises(SrlabError, match=r"\(name, weight, params\)"):
        build_weighted_objective([("l1", 1.0)])
    with pytest.raises(SrlabError, match="unknown loss"):
        build_weighted_objective([("perceptual", 1.0, None)])


def test_missing_uncertainty_is_an_error():
    with pytest.raises(SrlabError, match="uncertainty map"):
        build_objective("udl")(_inputs())


def test_weighted_objective_trains_a_tiny_model():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16, 16)
    inputs_lr = torch.nn.functional.avg_pool2d(hr, 2)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    objective = build_weighted_objective([("l1", 1.0, None), ("tv", 0.01, None)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        total, _ = objective(LossInputs(sr=model(inputs_lr), hr=hr, lr=inputs_lr, scale=2))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < 0.7 * losses[0]


def test_registration_enforces_the_contract():
    with pytest.raises(ValueError, match="loss 'l1' is registered twice"):
        register_loss("l1")(type("Again", (Objective,), {}))
    with pytest.raises(TypeError, match="must subclass srlab.losses.base.Objective"):
        register_loss("plain_module")(torch.nn.L1Loss)

    class Positional(Objective):
        def __init__(self, eps: float = 1.0) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="constructor argument 'eps' must be keyword-only with a default"):
        register_loss("positional")(Positional)
    assert loss_names() == LOSS_NAMES  # the failed registrations left the registry as it was
