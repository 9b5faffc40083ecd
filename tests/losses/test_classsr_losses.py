"""ClassSR's Class-Loss and Average-Loss on hand-computed cases, their gradients, and the error for a model
that gives no class probabilities."""

import pytest
import torch

import srlab
from srlab.errors import SrlabError
from srlab.losses import LOSS_NAMES, LossInputs, build_objective


def _inputs(probs: torch.Tensor | None) -> LossInputs:
    n = 1 if probs is None else probs.shape[0]
    aux = {} if probs is None else {"class_probs": probs}
    return LossInputs(sr=torch.zeros(n, 3, 8, 8), hr=torch.zeros(n, 3, 8, 8), lr=torch.zeros(n, 3, 2, 2),
                      scale=4, aux=aux)


def test_registered():
    assert {"class_loss", "average_loss"} <= set(LOSS_NAMES)


def test_class_loss_hand_computed():
    probs = torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.3, 0.2]])
    # one-hot: 2 - (1 + 1 + 0) = 0; uniform: 2 - 0 = 2; third: 2 - (0.2 + 0.3 + 0.1) = 1.4
    expected = (0.0 + 2.0 + 1.4) / 3
    assert build_objective("class_loss")(_inputs(probs)).item() == pytest.approx(expected, abs=1e-6)


def test_class_loss_for_two_classes():
    probs = torch.tensor([[0.75, 0.25]])  # (2 - 1) - 0.5
    assert build_objective("class_loss")(_inputs(probs)).item() == pytest.approx(0.5, abs=1e-7)


def test_average_loss_hand_computed():
    probs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.4, 0.6, 0.0]])
    # class sums 2.4, 0.6, 0; share 1: |1.4| + |-0.4| + |-1| = 2.8; divided by (3 / 3) * 4 = 4
    assert build_objective("average_loss")(_inputs(probs)).item() == pytest.approx(0.7, abs=1e-6)


def test_average_loss_bounds():
    balanced = torch.eye(3).repeat(2, 1)
    assert build_objective("average_loss")(_inputs(balanced)).item() == pytest.approx(0.0, abs=1e-7)
    all_hard = torch.tensor([[0.0, 0.0, 1.0]]).repeat(6, 1)
    assert build_objective("average_loss")(_inputs(all_hard)).item() == pytest.approx(1.0, abs=1e-6)


def test_gradients_reach_the_probabilities():
    logits = torch.tensor([[0.3, -0.2, 0.1], [1.0, 0.0, -1.0]], requires_grad=True)
    probs = torch.softmax(logits, dim=1)
    loss = build_objective("class_loss")(_inputs(probs)) + build_objective("average_loss")(_inputs(probs))
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["class_loss", "average_loss"])
def test_a_model_without_class_probabilities_is_a_clear_error(name):
    with pytest.raises(SrlabError, match=rf"the {name} loss needs the class probabilities of a ClassSR model"):
        build_objective(name)(_inputs(None))


@pytest.mark.parametrize("name", ["class_loss", "average_loss"])
def test_misshaped_probabilities_are_a_clear_error(name):
    with pytest.raises(SrlabError, match=r"class_probs must be shaped \(N, classes >= 2\) with N = 2, got \(2, 1\)"):
        build_objective(name)(LossInputs(sr=torch.zeros(2, 3, 4, 4), hr=torch.zeros(2, 3, 4, 4),
                                         lr=torch.zeros(2, 3, 1, 1), scale=4, aux={"class_probs": torch.ones(2, 1)}))


def test_the_losses_read_a_classsr_training_forward():
    torch.manual_seed(0)
    model = srlab.create_model("classsr_fsrcnn", scale=4).train()
    lr = torch.rand(4, 3, 32, 32)
    sr, aux = model(lr)
    inputs = LossInputs(sr=sr, hr=torch.rand_like(sr), lr=lr, scale=4, aux=aux)
    value = build_objective("class_loss")(inputs) + build_objective("average_loss")(inputs)
    value.backward()
    assert all(p.grad is not None for p in model.classifier.parameters())
