"""``official_state_dict``: state dicts the official code loads with strict=True.

The official SwinIR and Swin2SR models hold a shifted-window ``attn_mask`` buffer per shifted block,
computed in their constructor for ``img_size``; srlab drops them. The exported file must have exactly the
official names, shapes and dtypes (../shared/reference/official-state-dicts.json, recorded from the
official code), and the masks the official formula's values, computed here independently.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import srlab.models
from conftest import needs_reference, official_state_dicts
from srlab.errors import SrlabError
from srlab.models.create import create_model, model_with_weights
from srlab.export.official_state import official_state_dict
from srlab.models.swin2sr import Swin2SR
from srlab.models.swinir import SwinIR

# (srlab model, scale, reference entry); covers every class that declares derived keys (checked below).
CASES = [
    ("swinir_light", 2, "swinir_light_x2"),
    ("swin2sr_light", 3, "swin2sr_light_x3"),
    ("swinir", 4, "swinir_classical_x4"),
    ("swin2sr", 2, "swin2sr_classical_x2"),
]
COVERED = {SwinIR, Swin2SR}


def official_attn_mask(img_size: int, window: int, shift: int) -> torch.Tensor:
    """The official constructor's mask: label the 3 x 3 regions of an img_size^2 map that the cyclic
    shift brings together (cut at -window and -shift along each axis), split into windows, and put
    -100 between tokens of different regions, 0 between tokens of the same one."""
    cuts = [0, img_size - window, img_size - shift, img_size]
    labels = torch.zeros(img_size, img_size)
    for i in range(3):
        for j in range(3):
            labels[cuts[i]:cuts[i + 1], cuts[j]:cuts[j + 1]] = 3 * i + j
    n = img_size // window
    windows = labels.view(n, window, n, window).permute(0, 2, 1, 3).reshape(n * n, window * window)
    difference = windows[:, None, :] - windows[:, :, None]
    return torch.where(difference != 0, torch.tensor(-100.0), torch.tensor(0.0))


def test_every_model_class_with_derived_keys_is_covered():
    declaring = set()
    for module in pkgutil.iter_modules(srlab.models.__path__):
        for _, cls in inspect.getmembers(importlib.import_module(f"srlab.models.{module.name}"), inspect.isclass):
            if issubclass(cls, torch.nn.Module) and getattr(cls, "derived_checkpoint_keys", ()):
                declaring.add(cls)
    assert declaring == COVERED


@needs_reference
@pytest.mark.parametrize(("name", "scale", "reference"), CASES)
def test_export_has_exactly_the_official_names_shapes_dtypes_and_mask_values(name, scale, reference):
    torch.manual_seed(0)
    model = create_model(name, scale=scale)
    state = official_state_dict(model)
    official = {k: (tuple(shape), dtype) for k, shape, dtype, _ in official_state_dicts()[reference]["state_dict"]}
    assert {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()} == official
    masks = {k: v for k, v in state.items() if k.endswith(".attn_mask")}
    kwargs = official_state_dicts()[reference]["kwargs"]
    expected = official_attn_mask(kwargs["img_size"], kwargs["window_size"], kwargs["window_size"] // 2)
    assert len(masks) > 0
    for mask in masks.values():
        torch.testing.assert_close(mask, expected, rtol=0, atol=0)
    for key, value in model.state_dict().items():  # the weights themselves are unchanged
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_img_size_sizes_the_masks_as_the_official_constructor():
    model = create_model("swinir_light", scale=2)
    for img_size in (48, 16):
        masks = [v for k, v in official_state_dict(model, img_size=img_size).items() if k.endswith(".attn_mask")]
        assert len(masks) == 12  # 4 groups x 3 shifted blocks
        for mask in masks:
            assert mask.shape == ((img_size // 8) ** 2, 64, 64)
            torch.testing.assert_close(mask, official_attn_mask(img_size, 8, 4), rtol=0, atol=0)


@pytest.mark.parametrize("img_size", [8, 60, 4])
def test_img_sizes_the_official_code_would_build_differently_are_refused(img_size):
    with pytest.raises(SrlabError, match=f"--img_size must be a multiple of the window size 8 above it, not {img_size}"):
        official_state_dict(create_model("swinir_light", scale=2), img_size=img_size)


def test_models_without_derived_buffers_export_their_state_dict():
    torch.manual_seed(0)
    model = create_model("imdn", scale=2)
    state = official_state_dict(model)
    assert list(state) == list(model.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_srlab_only_architectures_are_refused():
    model, _ = model_with_weights("rdsr_s", scale=2)
    with pytest.raises(SrlabError, match="model 'rdsr_s' exists only in srlab: there is no official code"):
        official_state_dict(model)
