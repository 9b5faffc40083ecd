"""norm=none|batch|layer|instance on rdsr / rdsr_s (inside the residual distillation blocks) and on EDSR's
residual block (edsr_baseline, edsr): none changes nothing, the others sit where SRResNet put BatchNorm,
round-trip through checkpoints, and whole-image norms refuse tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import srlab
from srlab.errors import SrlabError
from srlab.inference import upscale_tensor
from srlab.inference.files import upscale_file
from srlab.models.edsr import ResBlock
from srlab.models.rdsr import ResidualDistillationBlock
from srlab.models.weights import save_weights
from srlab.train.trainer import train
from conftest import run_cli, tiny_train_config

SMALL = {"rdsr_s": {"channels": 8, "num_blocks": 2}, "edsr_baseline": {"channels": 8, "num_blocks": 2}}
NORMS = ("batch", "layer", "instance")


def _build(name, norm=None, seed=0, scale=2):
    torch.manual_seed(seed)
    args = dict(SMALL[name], **({} if norm is None else {"norm": norm}))
    return srlab.create_model(name, scale=scale, args=args)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_none_is_the_network_without_the_option(name):
    plain, none = _build(name), _build(name, "none")
    assert none.srlab_spec.args["norm"] == "none" == plain.srlab_spec.args["norm"]
    assert list(none.state_dict()) == list(plain.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(none.state_dict()[key], value)
    x = torch.rand(1, 3, 18, 18)
    assert torch.equal(none(x), plain(x))


def test_rdsr_block_without_norm_computes_the_drawn_block():
    torch.manual_seed(0)
    block = ResidualDistillationBlock(8, ca_reduction=4)
    assert sorted({k.split(".")[0] for k in block.state_dict()}) == ["attention", "conv1", "conv2", "conv3", "fuse"]
    x = torch.rand(1, 8, 7, 9)
    f1 = F.relu(block.conv1(x))
    f2 = F.relu(block.conv2(f1))
    f3 = F.relu(block.conv3(f2))
    assert torch.equal(block(x), block.attention(block.fuse(torch.cat((f1, f2, f3), 1))) + x)


def test_edsr_block_without_norm_keeps_the_official_indices():
    torch.manual_seed(0)
    block = ResBlock(8, res_scale=0.5)
    assert list(block.state_dict()) == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    x = torch.randn(1, 8, 5, 6)
    convs = block.body[0], block.body[2]
    assert torch.equal(block(x), convs[1](F.relu(convs[0](x))) * 0.5 + x)


def test_norms_sit_after_every_convolution_of_the_residual_branch():
    rdsr = _build("rdsr_s", "batch")
    block = rdsr.blocks[0]
    assert all(isinstance(getattr(block, n), nn.BatchNorm2d) for n in ("norm1", "norm2", "norm3", "fuse_norm"))
    assert "blocks.1.fuse_norm.running_mean" in rdsr.state_dict()
    # EDSR's official ResBlock(bn=True) layout: conv, norm, ReLU, conv, norm
    edsr = _build("edsr_baseline", "instance")
    kinds = [type(m) for m in edsr.body[0].body]
    assert kinds == [nn.Conv2d, nn.InstanceNorm2d, nn.ReLU, nn.Conv2d, nn.InstanceNorm2d]


@pytest.mark.parametrize("norm", NORMS)
def test_the_bicubic_start_of_rdsr_is_the_same_with_every_norm(norm):
    """The trunk fusion starts at zero, so at initialisation the blocks (and their norms) add nothing."""
    x = torch.rand(2, 3, 12, 12)
    torch.testing.assert_close(_build("rdsr_s", norm).train()(x), _build("rdsr_s").train()(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_norm_learns_running_statistics_and_uses_them_in_eval(name):
    model = _build(name, "batch")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in norms)
    model.train()(torch.rand(4, 3, 12, 12))
    assert all(m.num_batches_tracked.item() == 1 and m.running_mean.abs().sum() > 0 for m in norms)
    model.eval()
    x = torch.rand(1, 3, 12, 12)
    # eval: one image alone gives what it gives in a batch of others (running, not batch, statistics)
    torch.testing.assert_close(model(torch.cat((x, torch.rand(3, 3, 12, 12))))[:1], model(x))


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_per_pixel_norms_keep_edsr_tiles_exact(norm):
    model = _build("edsr_baseline", norm)
    model.train()(torch.rand(2, 3, 12, 12))  # running statistics that are not the initial ones
    model.eval()
    lr = torch.rand(1, 3, 30, 26)
    assert (upscale_tensor(model, lr, tile=10) - upscale_tensor(model, lr)).abs().max() < 1e-5


@pytest.mark.parametrize("name", sorted(SMALL))
def test_instance_norm_refuses_tiles_in_one_line(name):
    model = _build(name, "instance").eval()
    refusal = rf"^--tile: model '{name}' with norm=instance normalises over the whole image"
    with pytest.raises(SrlabError, match=refusal):
        upscale_tensor(model, torch.rand(1, 3, 30, 30), tile=12)
    assert upscale_tensor(model, torch.rand(1, 3, 30, 30)).shape == (1, 3, 60, 60)  # whole images are fine
    assert srlab.create_model(name, scale=2, args=SMALL[name]).srlab_spec.info.tiling_refusal == ""


@pytest.mark.parametrize(("name", "norm"), [("rdsr_s", "batch"), ("edsr_baseline", "instance")])
def test_checkpoint_round_trip_with_a_norm(name, norm, tmp_path):
    model = _build(name, norm)
    model.train()(torch.rand(2, 3, 12, 12))
    model.eval()
    save_weights(tmp_path / "w.safetensors", model)
    loaded = srlab.create_model(checkpoint=tmp_path / "w.safetensors")
    assert loaded.srlab_spec.args["norm"] == norm and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(1, 3, 12, 12)
    assert torch.equal(loaded(x), model(x))


def test_a_bad_norm_is_a_one_line_error_naming_the_choices():
    with pytest.raises(SrlabError, match=r"norm must be one of none, batch, layer, instance, got 'group'$"):
        srlab.create_model("edsr_baseline", scale=2, args={"norm": "group"})


def test_upscale_refuses_tiles_of_an_instance_norm_checkpoint_once(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_weights(weights, _build("edsr_baseline", "instance"))
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(image)
    common = ("upscale", image, "--checkpoint", weights, "-o", tmp_path / "out")
    code, _, err = run_cli(capsys, *common, "--tile", "8")
    assert code != 0 and err.startswith("srlab: error: --tile / --stream always: model 'edsr_baseline' with norm=")
    assert err.count("\n") == 1 and not (tmp_path / "out" / "a_x2.png").exists()
    code, _, err = run_cli(capsys, *common)
    assert code == 0, err
    assert Image.open(tmp_path / "out" / "a_x2.png").size == (48, 40)


def test_whole_image_norms_are_never_streamed(tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(image)
    model = _build("rdsr_s", "instance").eval()
    with pytest.raises(SrlabError, match=r"^--stream always: model 'rdsr_s' with norm=instance normalises"):
        upscale_file(model, image, tmp_path / "s.png", stream="always")
    assert not upscale_file(model, image, tmp_path / "w.png", stream="auto").streamed
    assert upscale_file(_build("rdsr_s", "batch").eval(), image, tmp_path / "b.png", stream="always").streamed


def test_training_with_batch_norm_saves_its_running_statistics(tiny_photos, tmp_path):
    config = tiny_train_config(tiny_photos, tmp_path / "run", epochs=1)
    config.model.args = {**config.model.args, "norm": "batch"}
    train(config, progress=False)
    model = srlab.create_model(checkpoint=tmp_path / "run" / "last.safetensors")
    assert model.srlab_spec.args["norm"] == "batch"
    norm = model.blocks[0].norm1
    assert norm.num_batches_tracked.item() > 0 and norm.running_mean.abs().sum() > 0
