"""Models whose official head is a plain sub-pixel head take ``upsampler=NAME``: the default keeps the
official head and keys; another name swaps in that upsampler and leaves the rest of the network alone."""

import pytest
import torch

import srlab
from srlab.layers.upsamplers import SubPixelHead, upsampler_entry
from srlab.models.registry import model_entry, model_info

WITH_UPSAMPLER = sorted(name for name in srlab.list_models() if "upsampler" in model_entry(name).defaults())
# the attribute that holds each architecture's head
HEADS = {"imdn": "upsampler", "tcfdn": "upsampler", "bsrn": "upsampler.upsampleOneStep",
         "bsrn_s": "upsampler.upsampleOneStep", "span": "upsampler", "span_ch28": "upsampler", "smsr": "tail",
         "omnisr": "up", "dlgsanet_tiny": "upsample", "dlgsanet_light": "upsample", "ditn": "upsample",
         "safmn": "to_img", "safmn_l": "to_img", "safmn_pp": "to_img", "rdsr": "tail", "rdsr_s": "tail",
         "rfdn": "upsampler", "rlfn": "upsampler", "rlfn_s": "upsampler", "rlfn_ntire": "upsampler",
         "elan_light": "tail", "elan": "tail", "camixersr": "tail", "camixersr_s": "tail"}


def test_every_plain_sub_pixel_model_takes_an_upsampler() -> None:
    assert set(HEADS) <= set(WITH_UPSAMPLER)
    assert all(model_entry(name).defaults()["upsampler"] == "subpixel" for name in WITH_UPSAMPLER)


def _scale(name: str) -> int:
    return model_info(name).scales[-1]


@pytest.mark.parametrize("name", sorted(HEADS))
def test_another_upsampler_replaces_only_the_head(name: str) -> None:
    torch.manual_seed(0)
    scale = _scale(name)
    official = srlab.create_model(name, scale=scale)
    swapped = srlab.create_model(name, scale=scale, args={"upsampler": "decomposed"})
    head = HEADS[name]
    if name not in ("rdsr", "rdsr_s"):  # rdsr's drawn tail is a conv + PixelShuffle pair
        assert isinstance(official.get_submodule(head), SubPixelHead)
    assert type(swapped.get_submodule(head)) is type(upsampler_entry("decomposed").factory(
        in_channels=4, out_channels=3, scale=scale))
    rest = lambda model: [k for k in model.state_dict() if not k.startswith(head + ".")]  # noqa: E731
    assert rest(official) == rest(swapped)
    swapped.eval()
    with torch.no_grad():
        assert swapped(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16 * scale, 16 * scale)
