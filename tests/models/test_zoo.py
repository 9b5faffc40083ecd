"""Checks every registered model passes, whatever its architecture (the per-model files test the rest)."""

import pytest
import torch

import srlab
from srlab.models import list_models, model_info
from srlab.models.weights import save_weights

CASES = [(name, scale) for name in list_models() for scale in model_info(name).scales if scale in (2, 3, 4)]


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_forward_at_an_odd_size(name, scale):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=scale).eval()
    assert model.scale == scale
    x = torch.rand(2, 3, 17, 23)  # a batch of two, odd sides, still >= 15 for the unpadded ESA of RFDN/RLFN
    before = x.clone()
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 17 * scale, 23 * scale)
    assert torch.isfinite(y).all()
    assert torch.equal(x, before)  # forward never mutates its input


@pytest.mark.parametrize(("name", "scale"), [c for c in CASES if c[0] != "edsr"] + [("edsr", 4)])
def test_state_dict_round_trip(name, scale, tmp_path):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=scale).eval()
    path = tmp_path / f"{name}_x{scale}.safetensors"
    save_weights(path, model)
    loaded = srlab.create_model(checkpoint=path)
    assert type(loaded) is type(model) and loaded.scale == scale
    assert loaded.srlab_spec.name == name
    x = torch.rand(1, 3, 16, 18)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
