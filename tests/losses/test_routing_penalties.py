"""aux_penalty (a model's own routing penalty, CAMixerSR / SMSR) and pcsr_average (PCSR's loss_avg) on
hand-computed cases."""

import pytest
import torch

from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective


def _inputs(aux):
    image = torch.zeros(1, 3, 4, 4)
    return LossInputs(sr=image, hr=image, lr=image[..., :2, :2], scale=2, aux=aux)


def test_aux_penalty_is_the_mean_of_the_named_output():
    penalty = build_objective("aux_penalty", params={"key": "sparsity"})
    maps = torch.tensor([[0.0, 0.5], [1.0, 0.5]]).view(1, 1, 2, 2)
    assert penalty(_inputs({"sparsity": maps, "other": torch.ones(1)})).item() == pytest.approx(0.5)
    ratio = build_objective("aux_penalty", params={"key": "ratio_loss"})
    assert ratio(_inputs({"ratio_loss": torch.tensor(0.02)})).item() == pytest.approx(0.02)


def test_aux_penalty_ramp_follows_the_epoch():
    penalty = build_objective("aux_penalty", params={"key": "sparsity", "ramp_epochs": 50})
    inputs = _inputs({"sparsity": torch.full((2, 3), 0.8)})
    with pytest.raises(SrlabError, match="ramp_epochs needs the epoch: set step: scheduled in the config"):
        penalty(inputs)
    # SMSR's lambda: min((epoch - 1) / 50, 1) * lambda0 (the weight carries lambda0)
    for epoch, ramp in ((1, 0.0), (2, 1 / 50), (26, 0.5), (51, 1.0), (300, 1.0)):
        penalty.set_training_epoch(epoch)
        assert penalty(inputs).item() == pytest.approx(0.8 * ramp), epoch


def test_aux_penalty_without_its_output_names_what_the_model_gave():
    penalty = build_objective("aux_penalty", params={"key": "ratio_loss"})
    with pytest.raises(SrlabError, match=r"gave no 'ratio_loss' \(its aux outputs: sparsity\): train a model"):
        penalty(_inputs({"sparsity": torch.ones(1)}))
    with pytest.raises(SrlabError, match=r"its aux outputs: none"):
        penalty(_inputs({}))
    with pytest.raises(SrlabError, match="name the model's penalty in params.key"):
        build_objective("aux_penalty")
    with pytest.raises(SrlabError, match="ramp_epochs must be an integer >= 0, got -1"):
        build_objective("aux_penalty", params={"key": "x", "ramp_epochs": -1})


def test_pcsr_average_is_the_official_loss_avg():
    heavy = torch.tensor([[0.9, 0.8], [0.7, 0.2]]).view(1, 1, 2, 2)
    probs = torch.cat([1 - heavy, heavy], dim=1)
    # official: |sum p_heavy - T| / T with T = b * q / 2 = 2: |2.6 - 2| / 2
    assert build_objective("pcsr_average")(_inputs({"pcsr_probs": probs})).item() == pytest.approx(0.3)
    balanced = torch.full((3, 2, 5, 7), 0.5)
    assert build_objective("pcsr_average")(_inputs({"pcsr_probs": balanced})).item() == pytest.approx(0.0, abs=1e-7)
    # every pixel heavy: the largest value, 1
    all_heavy = torch.cat([torch.zeros(2, 1, 3, 3), torch.ones(2, 1, 3, 3)], dim=1)
    assert build_objective("pcsr_average")(_inputs({"pcsr_probs": all_heavy})).item() == pytest.approx(1.0)
    # another target share T = 0.25 * 4 = 1: |2.6 - 1| / 1
    quarter = build_objective("pcsr_average", params={"target": 0.25})
    assert quarter(_inputs({"pcsr_probs": probs})).item() == pytest.approx(1.6)


def test_pcsr_average_refuses_what_is_not_pcsr_probabilities():
    with pytest.raises(SrlabError, match=r"needs the pixel class probabilities .* train a pcsr_\* model"):
        build_objective("pcsr_average")(_inputs({"class_probs": torch.ones(1, 3)}))
    with pytest.raises(SrlabError, match=r"pcsr_probs must be shaped \(N, 2, H, W\), got \(1, 3\)"):
        build_objective("pcsr_average")(_inputs({"pcsr_probs": torch.ones(1, 3)}))
    with pytest.raises(SrlabError, match=r"target \(the share of heavy pixels\) must be in \(0, 1\], got 0"):
        build_objective("pcsr_average", params={"target": 0})
