"""The rdsr search space and the attention choices it draws (srlab.models.rdsr)."""

from __future__ import annotations

import pytest
import torch

from srlab.errors import SrlabError
from srlab.models.create import create_model
from srlab.models.detect import matching_models
from srlab.nas import space as space_module
from srlab.models.registry import spec_of
from srlab.nas.space import SearchSpace, get_space, list_spaces, register_space


def test_the_defaults_keep_the_drawn_network_and_its_keys():
    drawn = create_model("rdsr_s", scale=4)
    explicit = create_model("rdsr_s", scale=4, args={"attention": "ca", "spatial_attention": "esa"})
    assert list(drawn.state_dict()) == list(explicit.state_dict())
    assert any(".attention.squeeze." in k for k in drawn.state_dict()) and any(k.startswith("esa.") for k in drawn.state_dict())


def test_attention_choices_leave_their_keys_out_and_shrink_the_receptive_radius():
    plain = create_model("rdsr_s", scale=4, args={"attention": "none", "spatial_attention": "none"})
    keys = list(plain.state_dict())
    assert not any(".attention." in k or k.startswith("esa.") for k in keys)
    radius = spec_of(plain).info.receptive_radius
    assert radius < spec_of(create_model("rdsr_s", scale=4)).info.receptive_radius
    assert radius == 6 * ((3 * 4 + 2) // 6 + 1)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert plain.eval()(x).shape == (1, 3, 48, 48)


def test_weights_without_an_attention_name_their_architecture():
    plain = create_model("rdsr_s", scale=2, args={"channels": 24, "attention": "none", "spatial_attention": "none"})
    (detected,) = matching_models(plain.state_dict(), name="rdsr_s", scale=2)
    assert {"channels": 24, "attention": "none", "spatial_attention": "none"}.items() <= detected.args.items()


def test_an_unknown_choice_is_refused():
    with pytest.raises(SrlabError, match="attention must be one of ca, none, got 'se'"):
        create_model("rdsr_s", scale=2, args={"attention": "se"})


def test_the_rdsr_space_draws_buildable_architectures_and_one_registration_adds_a_space(monkeypatch):
    optuna = pytest.importorskip("optuna")
    space = get_space("rdsr")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        args = space.suggest(study.ask())
        assert ("ca_reduction" in args) == (args["attention"] == "ca")
        create_model(space.model, scale=4, args=args)
    monkeypatch.setattr(space_module, "_SPACES", dict(space_module._SPACES))  # the test's space stays here
    register_space(SearchSpace(name="tiny_test_space", model="rdsr_s", suggest=lambda trial: {},
                               smallest=({},), description="test"))
    assert "tiny_test_space" in list_spaces()
    with pytest.raises(SrlabError, match="unknown search space 'vit' \\(--space\\): use one of rdsr, tiny_test_space"):
        get_space("vit")


def test_the_residual_block_type_has_two_convolutions_and_names_itself():
    model = create_model("rdsr_s", scale=2, args={"channels": 16, "num_blocks": 2, "block": "residual"})
    keys = [k for k in model.state_dict() if k.startswith("blocks.0.")]
    assert keys == ["blocks.0.conv1.weight", "blocks.0.conv1.bias", "blocks.0.conv2.weight", "blocks.0.conv2.bias",
                    "blocks.0.attention.squeeze.weight", "blocks.0.attention.squeeze.bias",
                    "blocks.0.attention.excite.weight", "blocks.0.attention.excite.bias"]
    assert spec_of(model).info.receptive_radius == 6 * ((2 * 2 + 2 + 60) // 6 + 1)
    (detected,) = matching_models(model.state_dict(), name="rdsr_s", scale=2)
    assert {"channels": 16, "num_blocks": 2, "block": "residual"}.items() <= detected.args.items()
    block = model.blocks[0].eval()
    x = torch.rand(1, 16, 5, 7)
    with torch.no_grad():  # conv-ReLU-conv, gated by the channel attention, plus the input
        assert torch.allclose(block(x), block.attention(block.conv2(torch.relu(block.conv1(x)))) + x)
    with pytest.raises(SrlabError, match="block must be one of distill, residual, got 'dense'"):
        create_model("rdsr_s", scale=2, args={"block": "dense"})
