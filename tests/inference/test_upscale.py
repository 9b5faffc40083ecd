import pytest
import torch

import srlab
from srlab.data.resize import bicubic_upscale
from srlab.errors import SrlabError
from srlab.inference import resolve_device, upscale_tensor


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return srlab.create_model("rdsr_s", scale=2).eval()


@pytest.mark.parametrize("size", [(5, 7), (50, 70), (97, 131)])
def test_output_size_and_rank(model, size):
    lr = torch.rand(3, *size)
    out = upscale_tensor(model, lr)
    assert out.shape == (3, size[0] * 2, size[1] * 2)
    assert upscale_tensor(model, lr[None]).shape == (1, 3, size[0] * 2, size[1] * 2)


def test_padding_to_the_size_multiple_matches_an_exact_multiple(model):
    """Inputs that are already a multiple of 6 run unpadded, so the pad path must agree in the interior."""
    lr = torch.rand(1, 3, 48, 60)
    exact = upscale_tensor(model, lr)
    with torch.no_grad():
        direct = model(lr)
    assert torch.equal(exact, direct)


@pytest.mark.parametrize(("tile", "size"), [(12, (97, 131)), (30, (64, 64)), (6, (40, 25))])
def test_tiled_equals_untiled(model, tile, size):
    lr = torch.rand(1, 3, *size)
    whole = upscale_tensor(model, lr)
    tiled = upscale_tensor(model, lr, tile=tile)
    assert (whole - tiled).abs().max() < 1e-5


def test_too_small_an_overlap_changes_the_result(model):
    """The test above is meaningful: without enough context tiles do differ."""
    lr = torch.rand(1, 3, 96, 96)
    assert (upscale_tensor(model, lr) - upscale_tensor(model, lr, tile=12, tile_overlap=0)).abs().max() > 1e-3


def test_tiling_bounds_the_size_the_model_sees():
    seen = []
    model = srlab.create_model("bicubic", scale=2)
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    lr = torch.rand(1, 3, 100, 100)
    tiled = upscale_tensor(model, lr, tile=20, tile_overlap=4)
    assert max(max(s) for s in seen) <= 20 + 2 * 4
    assert torch.allclose(tiled, bicubic_upscale(lr, 2, quantize=True), atol=1e-6)


def test_bad_tile_and_device():
    model = srlab.create_model("bicubic", scale=2)
    with pytest.raises(SrlabError, match="--tile must be positive"):
        upscale_tensor(model, torch.rand(3, 20, 20), tile=-4)
    with pytest.raises(SrlabError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SrlabError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(model):
    lr = torch.rand(1, 3, 40, 52)
    cpu = upscale_tensor(model, lr)
    gpu = upscale_tensor(model.cuda(), lr.cuda(), tile=12).cpu()
    model.cpu()
    assert (cpu - gpu).abs().max() < 1e-4


def test_omnisr_through_the_path_is_its_own_forward():
    """Issue 11: Omni-SR zero-pads to its window inside forward; the path used to reflect-pad first and
    changed every border row of a 180x320 image (by up to 0.22)."""
    torch.manual_seed(0)
    model = srlab.create_model("omnisr", scale=2, args={"num_feat": 16, "res_num": 1}).eval()
    lr = torch.rand(1, 3, 180, 320)  # 180 is not a multiple of the window (8)
    with torch.no_grad():
        assert torch.equal(upscale_tensor(model, lr), model(lr))


def test_tiles_of_a_model_that_pads_inside_match_the_whole_image():
    """The path leaves the padding to the model, tiles included: tiles start on the window grid, so the
    last row and column of tiles are padded by the same amount as the whole image."""
    torch.manual_seed(0)
    args = {"embed_dim": 12, "num_groups": 1, "depth": 2, "num_heads": 2, "window_size": 4}
    model = srlab.create_model("swinir_light", scale=2, args=args).double().eval()
    lr = torch.rand(1, 3, 37, 30, dtype=torch.float64)
    whole = upscale_tensor(model, lr)
    tiled = upscale_tensor(model, lr, tile=8)
    assert (whole - tiled).abs().max() < 1e-12
    assert (whole - upscale_tensor(model, lr, tile=8, tile_overlap=0)).abs().max() > 1e-3
