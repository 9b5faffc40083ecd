"""The fusion model (study 6.4): N registered models and a learned layer over their outputs."""

import shutil

import pytest
import torch

import srlab
from conftest import OFFICIAL_WEIGHTS, needs_weights, tiny_train_config
from srlab.errors import SrlabError
from srlab.inference.upscale import upscale_tensor
from srlab.models import count_macs, count_parameters, model_info
from srlab.models.fusion import FUSIONS
from srlab.models.registry import spec_of
from srlab.models.weights import read_checkpoint, save_weights
from srlab.train.trainer import train

KINDS = list(FUSIONS)


def _member_file(tmp_path, name="rdsr_s", scale=2, seed=0):
    """Weights of a random member (noise on every tensor: rdsr_s starts as bicubic, whatever the seed)."""
    torch.manual_seed(seed)
    model = srlab.create_model(name, scale=scale)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.05 * torch.randn_like(tensor))
    path = tmp_path / f"{name}_x{scale}_{seed}.safetensors"
    save_weights(path, model)
    return path


def _fusion(members, scale=2, **args):
    return srlab.create_model("fusion", scale=scale, args={"members": members, **args})


@pytest.mark.parametrize("kind", KINDS)
def test_fusion_of_identical_members_equals_one_member(tmp_path, kind):
    file = _member_file(tmp_path)
    single = srlab.create_model(checkpoint=file)
    fused = _fusion(f"rdsr_s:{file},rdsr_s:{file},rdsr_s:{file}", fusion=kind).eval()
    x = torch.rand(2, 3, 18, 24)  # a multiple of rdsr_s's 6
    with torch.no_grad():
        expected = single(x)
        torch.testing.assert_close(fused(x), expected, rtol=1e-6, atol=1e-6)
        # through the one inference path, at a size rdsr_s pads: the members are padded as alone
        odd = torch.rand(3, 17, 23)
        torch.testing.assert_close(upscale_tensor(fused, odd), upscale_tensor(single, odd), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_untrained_fusion_is_the_average_of_its_members(tmp_path, kind):
    a, b = _member_file(tmp_path, seed=1), _member_file(tmp_path, seed=2)
    fused = _fusion(f"rdsr_s:{a},rdsr_s:{b}", fusion=kind).eval()
    x = torch.rand(1, 3, 12, 18)
    with torch.no_grad():
        mean = (srlab.create_model(checkpoint=a)(x) + srlab.create_model(checkpoint=b)(x)) / 2
        torch.testing.assert_close(fused(x), mean, rtol=1e-6, atol=1e-6)
    assert fused(x).shape == (1, 3, 24, 36)


@pytest.mark.parametrize("trainable", [False, True])
def test_a_training_step_changes_the_fusion_layer_and_only_trainable_members(tmp_path, trainable):
    a, b = _member_file(tmp_path, seed=1), _member_file(tmp_path, seed=2)
    fused = _fusion(f"rdsr_s:{a},rdsr_s:{b}", fusion="softmax", trainable=trainable).train()
    assert all(m.training == trainable for m in fused.members)  # frozen members stay in eval mode
    before = {k: v.clone() for k, v in fused.state_dict().items()}
    optimizer = torch.optim.Adam(fused.parameters(), lr=1e-2)  # every parameter, as srlab's trainer does
    loss = (fused(torch.rand(2, 3, 12, 12)) - torch.rand(2, 3, 24, 24)).abs().mean()
    loss.backward()
    optimizer.step()
    after = fused.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {"fuse.logits.weight", "fuse.logits.bias"} <= changed
    assert any(k.startswith("members.") for k in changed) == trainable
    assert count_parameters(fused, trainable_only=True) == (count_parameters(fused) if trainable else 2 * (6 * 9) + 2)


def test_train_then_eval_and_read_the_run_checkpoint_without_member_files(tiny_photos, tmp_path):
    a, b = _member_file(tmp_path, seed=1), _member_file(tmp_path, seed=2)
    config = tiny_train_config(tiny_photos, tmp_path / "run", epochs=1)
    config.model.name, config.model.args = "fusion", {"members": f"rdsr_s:{a},rdsr_s:{b}"}
    train(config, progress=False)
    best = tmp_path / "run" / "best.safetensors"
    saved = read_checkpoint(best).state_dict
    for i, file in enumerate((a, b)):  # the frozen members are bit-identical to their files
        for key, value in read_checkpoint(file).state_dict.items():
            assert torch.equal(saved[f"members.{i}.{key}"], value), key
    assert not torch.equal(saved["fuse.conv.weight"], _fusion(f"rdsr_s:{a},rdsr_s:{b}").fuse.conv.weight)
    model = srlab.create_model(checkpoint=best)
    x = torch.rand(1, 3, 12, 12)
    shutil.move(a, tmp_path / "moved.safetensors")
    with pytest.raises(SrlabError, match=rf"fusion member 'rdsr_s:{a}': '{a}' does not exist: .*members=imdn,rlfn"):
        srlab.create_model(checkpoint=best)
    alone = srlab.create_model(checkpoint=best, args={"members": "rdsr_s,rdsr_s"})
    with torch.no_grad():
        assert torch.equal(alone(x), model(x))


def test_metadata_follows_the_members():
    fused = _fusion("rdsr_s,ditn", fusion="conv3x3")  # size multiples 6 and 8
    info, rdsr, ditn = spec_of(fused).info, model_info("rdsr_s"), model_info("ditn")
    assert info.size_multiple == 24
    assert info.receptive_radius == max(rdsr.receptive_radius, ditn.receptive_radius) + 1
    assert info.pad_mode == "inside"
    assert spec_of(_fusion("rdsr_s,ditn", fusion="conv1x1")).info.receptive_radius == info.receptive_radius - 1


@pytest.mark.parametrize(("kind", "layer_macs"), [("conv1x1", 6 * 3), ("conv3x3", 6 * 3 * 9), ("softmax", 6 * 2 * 9)])
def test_macs_are_the_members_plus_the_fusion_layer(kind, layer_macs):
    fused = _fusion("rdsr_s,rdsr_s", fusion=kind)
    members = sum(count_macs(m, (18, 24)) for m in fused.members)
    assert count_macs(fused, (18, 24)) == members + layer_macs * 36 * 48


@pytest.mark.parametrize(("members", "args", "message"), [
    ("rdsr_s,nonet", {}, r"fusion member 'nonet': unknown model 'nonet': choose one of"),
    ("rdsr_s,rdsr_s:{tmp}/absent.pth", {}, r"fusion member 'rdsr_s:.*absent.pth': '.*absent.pth' does not exist"),
    ("rdsr_s,bsrn_s", {}, r"fusion member 'bsrn_s': model 'bsrn_s' does not support scale 2: use one of \[4\]"),
    ("rdsr_s,rdsr_s:{x3}", {}, r"fusion member 'rdsr_s:.*': '.*' holds rdsr_s x3, not rdsr_s x2"),
    ("rdsr_s,imdn:{pth}", {}, r"fusion member 'imdn:.*': checkpoint '.*' does not fit model 'imdn' x2: .* missing"),
    ("rdsr_s", {}, r"fusion members 'rdsr_s': fuse at least two models"),
    ("rdsr_s,,rdsr_s", {}, r"fusion members 'rdsr_s,,rdsr_s': an empty entry"),
    ("rdsr_s,liif_edsr_baseline", {}, r"fusion member 'liif_edsr_baseline': model .* is arbitrary-scale"),
    ("rdsr_s,rdsr_s", {"fusion": "max"}, r"fusion layer 'max' is unknown: use one of conv1x1, conv3x3, softmax"),
])
def test_bad_member_specs_are_one_line_errors(tmp_path, members, args, message):
    foreign = tmp_path / "rdsr_s.pth"  # a plain state dict, as official releases are: no metadata
    torch.save(srlab.create_model("rdsr_s", scale=2).state_dict(), foreign)
    spec = members.format(tmp=tmp_path, x3=_member_file(tmp_path, scale=3), pth=foreign)
    with pytest.raises(SrlabError, match=message) as caught:
        _fusion(spec, **args)
    assert "\n" not in str(caught.value)


def test_the_cli_upscales_with_a_fusion_checkpoint(tmp_path, capsys):
    from PIL import Image

    from conftest import run_cli

    a, b = _member_file(tmp_path, seed=1), _member_file(tmp_path, seed=2)
    weights = tmp_path / "fusion.safetensors"
    save_weights(weights, _fusion(f"rdsr_s:{a},rdsr_s:{b}", fusion="softmax"))
    Image.new("RGB", (13, 11), (90, 140, 200)).save(tmp_path / "in.png")
    code, _, err = run_cli(capsys, "upscale", "--checkpoint", weights, "-o", tmp_path / "out", "--path", "eager",
                           tmp_path / "in.png")
    assert code == 0, err
    assert Image.open(next((tmp_path / "out").iterdir())).size == (26, 22)
    code, _, err = run_cli(capsys, "upscale", "--checkpoint", weights, "--model_arg", "members=rdsr_s,rdsr_s:/no/x",
                           "-o", tmp_path / "out2", tmp_path / "in.png")
    assert code != 0 and err.count("\n") == 1 and "fusion member 'rdsr_s:/no/x': '/no/x' does not exist" in err


OFFICIAL = {"imdn": "imdn/IMDN_x4.pth", "rlfn": "rlfn/rlfn_x4.pth", "bsrn": "bsrn/net_g_BSRN_x4.pth"}


@needs_weights
@pytest.mark.parametrize("kind", KINDS)
def test_untrained_fusion_of_the_official_x4_weights_is_their_mean(kind):
    members = ",".join(f"{name}:{OFFICIAL_WEIGHTS / file}" for name, file in OFFICIAL.items())
    fused = _fusion(members, scale=4, fusion=kind)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        outputs = [srlab.create_model(name, scale=4, checkpoint=OFFICIAL_WEIGHTS / file)(x)
                   for name, file in OFFICIAL.items()]
        torch.testing.assert_close(fused(x), sum(outputs) / 3, rtol=1e-5, atol=1e-6)


@needs_weights
def test_official_weights_of_another_scale_are_refused():
    x2 = OFFICIAL_WEIGHTS / "imdn" / "IMDN_x2.pth"
    with pytest.raises(SrlabError, match=r"fusion member 'imdn:.*IMDN_x2.pth': checkpoint .* does not fit model "
                                         r"'imdn' x4: .* of another shape"):
        _fusion(f"imdn:{x2},rlfn", scale=4)
