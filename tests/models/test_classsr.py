"""ClassSR (Kong et al., CVPR 2021): official state-dict layout, parameter counts and per-patch costs, the
training forward (probability-weighted branches), the eval forward (the full path) and the ``trains``
stages."""

import hashlib

import pytest
import torch

import srlab
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared
from srlab.data.io import read_rgb
from srlab.errors import SrlabError
from srlab.models import count_parameters, paper_parameter_count
from srlab.models.classsr import fsrcnn_branches_from_arm
from srlab.models.complexity import count_macs

NAMES = ("classsr_fsrcnn", "classsr_carn", "classsr_srresnet")

# sha256 of the sorted "key shape" lines of the official classes' state dicts (XPixelGroup/ClassSR
# classSR_3class_fsrcnn_net, classSR_carn_arch.ClassSR, classSR_srresnet_arch.ClassSR; x4), computed
# once from the official code: equal listings mean an official checkpoint loads strictly.
OFFICIAL_LISTING_SHA256 = {
    "classsr_fsrcnn": "486dcdc6cb20a84c3f8f5f55860f2d755ea3de978daa889a35f88ab530968a36",
    "classsr_carn": "8dd533dde73dd55088909bf826150c6fa7f9df6af43a4cf5343df54f189a19ac",
    "classsr_srresnet": "457c280787e8c43a1d477371ae0969ab630de5324df039e6e76c896b1c96ca59",
}
# All parameters of the official classes (paper-results.md §8b "M:") and the paper's figures.
OFFICIAL_PARAMETERS = {"classsr_fsrcnn": 112_940, "classsr_carn": 645_476, "classsr_srresnet": 3_062_060}
# The official util.cal_FLOPs per 32x32 LR patch (FLOPs = 2 x MACs), in units of 1e6.
OFFICIAL_PATCH_FLOPS_M = {
    "classsr_fsrcnn": (141, 304, 468),
    "classsr_carn": (380, 770, 1150),
    "classsr_srresnet": (1660, 3440, 5200),
}


def _listing_sha(model: torch.nn.Module) -> str:
    listing = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sorted(model.state_dict().items()))
    return hashlib.sha256(listing.encode()).hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_the_state_dict_is_the_official_one(name):
    model = srlab.create_model(name, scale=4)
    assert _listing_sha(model) == OFFICIAL_LISTING_SHA256[name]


def test_official_names_spot_check():
    shapes = {k: tuple(v.shape) for k, v in srlab.create_model("classsr_fsrcnn", scale=4).state_dict().items()}
    assert shapes["classifier.CondNet.0.weight"] == (128, 3, 4, 4)
    assert shapes["classifier.lastOut.weight"] == (3, 32)
    assert shapes["net1.head_conv.1.weight"] == (1,)  # one PReLU slope
    assert shapes["net2.body_conv.4.weight"] == (12, 12, 3, 3)
    assert shapes["net3.tail_conv.weight"] == (56, 3, 9, 9)
    carn = srlab.create_model("classsr_carn", scale=4).state_dict()
    assert tuple(carn["net1.b1.c1.1.running_mean"].shape) == (36,)  # fusion: conv, BatchNorm, ReLU
    assert "net1.b1.c1.0.bias" not in carn
    assert tuple(carn["net3.upsample.up.body.3.weight"].shape) == (256, 16, 3, 3)
    assert tuple(carn["net2.sub_mean.weight"].shape) == (3, 3, 1, 1)
    resnet = srlab.create_model("classsr_srresnet", scale=4).state_dict()
    assert tuple(resnet["net2.recon_trunk.15.conv2.weight"].shape) == (52, 52, 3, 3)
    assert tuple(resnet["net3.upconv2.weight"].shape) == (256, 64, 3, 3)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_equal_the_official_classes(name):
    model = srlab.create_model(name, scale=4)
    assert count_parameters(model) == OFFICIAL_PARAMETERS[name]
    frozen = 72 if name == "classsr_carn" else 0  # the branches' mean shifts, 3 x 2 x 12 values
    assert paper_parameter_count(model) == OFFICIAL_PARAMETERS[name] - frozen


@pytest.mark.parametrize("name", NAMES)
def test_branch_costs_per_patch_match_the_official_flops_table(name):
    model = srlab.create_model(name, scale=4)
    flops = [2 * count_macs(net, (32, 32)) / 1e6 for net in model.branches]
    for ours, official in zip(flops, OFFICIAL_PATCH_FLOPS_M[name]):
        assert abs(ours - official) <= 0.005 * official, (flops, OFFICIAL_PATCH_FLOPS_M[name])
    assert flops[0] < flops[1] < flops[2]


@pytest.mark.parametrize("name", NAMES)
def test_the_training_forward_weights_the_branches_by_the_class_probabilities(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4).train()
    x = torch.rand(3, 3, 32, 32)
    sr, aux = model(x)
    probs = aux["class_probs"]
    assert probs.shape == (3, 3) and torch.allclose(probs.sum(dim=1), torch.ones(3))
    assert torch.allclose(probs, torch.softmax(model.classifier(x), dim=1))
    with torch.no_grad():
        outs = [torch.cat([net(p[None]) for p in x]) for net in model.branches]
    expected = sum(probs[:, i, None, None, None] * outs[i] for i in range(3))
    assert sr.shape == (3, 3, 128, 128)
    assert (sr - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("name", NAMES)
def test_the_eval_forward_is_the_full_path_on_any_size(name):
    torch.manual_seed(0)
    model = srlab.create_model(name, scale=4).eval()
    x = torch.rand(1, 3, 19, 26)
    with torch.no_grad():
        assert torch.equal(model(x), model.net3(x))
    assert model(x).shape == (1, 3, 76, 104)


def test_batch_norm_branches_see_one_patch_at_a_time_in_training():
    # The official loop feeds the branches one patch at a time: BatchNorm statistics over one patch.
    torch.manual_seed(0)
    model = srlab.create_model("classsr_carn", scale=4).train()
    x = torch.rand(2, 3, 16, 16)
    one_by_one = torch.cat([model.net1(p[None]) for p in x])
    assert torch.equal(model._branch_output(0, x), one_by_one)
    assert not torch.allclose(model.net1(x), one_by_one, atol=1e-4)  # a batch would mix the two


def test_stage_one_trains_one_branch_and_runs_it_alone():
    torch.manual_seed(0)
    model = srlab.create_model("classsr_fsrcnn", scale=4, args={"trains": "net2"}).train()
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"net2"}
    x = torch.rand(2, 3, 32, 32)
    out = model(x)
    assert torch.equal(out, model.net2(x))  # a plain tensor: no probabilities to hand to the losses
    out.mean().backward()
    assert all(p.grad is not None for p in model.net2.parameters())
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model.net2(x))  # validation scores the branch it trains


def test_stage_two_freezes_the_branches_and_trains_the_classifier():
    torch.manual_seed(0)
    model = srlab.create_model("classsr_carn", scale=4, args={"trains": "classifier"}).train()
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"classifier"}
    sr, aux = model(torch.rand(2, 3, 16, 16))
    (sr.mean() + aux["class_probs"][:, 0].mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.classifier.parameters())
    assert all(p.grad is None for p in model.net3.parameters())


def test_stage_three_trains_everything_but_the_mean_shifts():
    model = srlab.create_model("classsr_carn", scale=4)
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen == sorted(f"net{i}.{s}.{t}" for i in (1, 2, 3) for s in ("sub_mean", "add_mean") for t in ("weight", "bias"))


def test_an_unknown_trained_part_is_a_one_line_error():
    with pytest.raises(SrlabError, match="trains must be one of all, classifier, net1, net2, net3"):
        srlab.create_model("classsr_fsrcnn", scale=4, args={"trains": "net4"})


@pytest.mark.parametrize(("name", "scale"), [("classsr_fsrcnn", 3), ("classsr_carn", 2), ("classsr_carn", 3),
                                             ("classsr_srresnet", 2), ("classsr_srresnet", 3)])
def test_other_scales_build_exact_sizes(name, scale):
    model = srlab.create_model(name, scale=scale).eval()
    with torch.no_grad():
        for net in model.branches:
            assert net(torch.rand(1, 3, 11, 13)).shape == (1, 3, 11 * scale, 13 * scale)


def test_fsrcnn_has_no_x2():
    with pytest.raises(SrlabError, match="does not support scale 2"):
        srlab.create_model("classsr_fsrcnn", scale=2)


ARM_FSRCNN = OFFICIAL_WEIGHTS / "arm" / "arm-fsrcnn.pth"
BUTTERFLY = BENCHMARKS / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png"


@needs_shared(ARM_FSRCNN, BUTTERFLY)
def test_branches_sliced_from_the_released_arm_supernet_compute_its_subnets():
    # ARM's FSRCNN is the ClassSR code's FSRCNN made slimmable: width d = a ClassSR branch of d channels.
    arm = srlab.create_model("arm_fsrcnn", scale=4, checkpoint=ARM_FSRCNN)
    model = srlab.create_model("classsr_fsrcnn", scale=4).eval()
    missing, unexpected = model.load_state_dict(fsrcnn_branches_from_arm(arm.state_dict()), strict=False)
    assert not unexpected and all(k.startswith("classifier.") for k in missing)
    lr = read_rgb(BUTTERFLY)[None]
    with torch.no_grad():
        for net, width in zip(model.branches, (16, 36, 56)):
            assert torch.equal(net(lr), arm(lr, width=width))
