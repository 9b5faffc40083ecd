"""LUT inference gives the same uint8 outputs tiled and whole, and on a GPU as on the CPU."""

from __future__ import annotations

import pytest
import torch

import srlab
from srlab.inference.upscale import upscale_tensor
from srlab.models.registry import spec_of

CASES = [
    ("sr_lut", {"field": "S"}),
    ("sr_lut", {"field": "D", "srlut_order": False}),
    ("sr_lut", {"field": "F"}),
    ("sr_lut", {"field": "V", "levels": 257}),
    ("mulut", {}),
]


def random_tables(name, args, scale=4):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=scale, args=args).eval()
    with torch.no_grad():
        for table in model.parameters():
            table.copy_(torch.randint(-127, 128, table.shape))
    return model


def image(h=19, w=23):
    torch.manual_seed(1)
    return torch.randint(0, 256, (1, 3, h, w)).float() / 255


@pytest.mark.parametrize(("name", "args"), CASES)
def test_tiles_reproduce_the_whole_image(name, args):
    model = random_tables(name, args)
    x = image()[0]
    with torch.no_grad():
        whole = upscale_tensor(model, x)
        tiled = upscale_tensor(model, x, tile=8, tile_overlap=spec_of(model).info.receptive_radius)
    assert torch.equal(whole, tiled)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("name", "args"), CASES)
def test_cuda_computes_the_same_uint8_outputs(name, args):
    model = random_tables(name, args)
    x = image()
    with torch.no_grad():
        on_cpu = model(x)
        on_gpu = model.cuda()(x.cuda()).cpu()
        half = model.half()(x.cuda().half()).float().cpu()
    assert torch.equal(on_gpu, on_cpu)
    assert torch.equal((half * 255).round(), (on_cpu * 255).round())
