"""rdsr_adaptive: rdsr_s with early exits; its full path is rdsr_s, its exits share everything but a correction."""

import math

import pytest
import torch

import srlab
from srlab.adaptive import build_adaptive
from srlab.errors import SrlabError
from srlab.losses import LossInputs, build_objective
from srlab.models import count_parameters
from srlab.models.weights import save_weights

SMALL = {"channels": 8, "num_blocks": 3, "ca_reduction": 4}


def _small(scale=2, seed=0):
    torch.manual_seed(seed)
    model = srlab.create_model("rdsr_adaptive", scale=scale, args=SMALL)
    with torch.no_grad():  # nothing trivially zero (the interpolator init zeroes the fusion, the deltas start at 0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_the_bundled_rdsr_s_weights_load_and_the_full_path_is_rdsr_s():
    reference = srlab.create_model("rdsr_s", scale=4, pretrained=True).eval()
    model = srlab.create_model("rdsr_adaptive", scale=4)
    result = model.load_state_dict(reference.state_dict(), strict=False)
    assert result.unexpected_keys == []  # every tensor of rdsr_s has its name and shape here
    assert sorted(result.missing_keys) == sorted(
        [f"exit_{part}_delta.{k}.{p}" for part in ("fuse", "tail") for k in range(4) for p in ("bias", "weight")]
        + [f"router.{name}" for name in srlab.create_model("rdsr_adaptive", scale=4).router.state_dict()]
        + ["router_trained"])
    model.eval()
    x = torch.rand(2, 3, 30, 36)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
        assert torch.equal(model.forward_exit(x, 4), reference(x))


def test_the_new_parameters_are_the_exit_corrections_and_the_router():
    for scale in (2, 3, 4):
        model = srlab.create_model("rdsr_adaptive", scale=scale)
        extra = count_parameters(model) - count_parameters(srlab.create_model("rdsr_s", scale=scale))
        fusions = (32 + 32 + 64 + 96) * 32 + 4 * 32
        tails = 4 * (32 * 3 * scale**2 * 9 + 3 * scale**2)
        router = (3 * 16 * 9 + 16) + (16 * 32 * 9 + 32) + (32 * 32 * 9 + 32) + (64 * 5 + 5)
        assert count_parameters(model.router) == router
        assert extra == fusions + tails + router


def test_the_training_forward_returns_every_exit_from_one_pass():
    model = _small()
    x = torch.rand(2, 3, 12, 18)
    model.train()
    sr, aux = model(x)
    assert set(aux) == {"exit_srs"} and aux["exit_srs"].shape == (3, 2, 3, 24, 36)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(sr, model(x), atol=1e-6, rtol=0)
        for k in range(3):
            assert torch.allclose(aux["exit_srs"][k], model.forward_exit(x, k), atol=1e-6, rtol=0)


def test_an_exit_runs_only_its_blocks():
    model = _small().eval()
    ran = []
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda m, inp, out, i=i: ran.append(i))
    with torch.no_grad():
        for k in range(model.num_exits):
            ran.clear()
            model.forward_exit(torch.rand(1, 3, 12, 12), k)
            assert ran == list(range(k))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_an_uncorrected_exit_is_the_full_network_when_the_later_blocks_do_nothing(k):
    """The derived fusion stands the last computed block output in for the missing ones, and the tail is
    the network's: exact when the blocks after exit k are identities (their residual branch zeroed)."""
    model = _small().eval()
    with torch.no_grad():
        for block in model.blocks[k:]:
            block.fuse.weight.zero_()
            block.fuse.bias.zero_()
        for delta in (*model.exit_fuse_delta, *model.exit_tail_delta):
            delta.weight.zero_()
            delta.bias.zero_()
        x = torch.rand(1, 3, 12, 18)
        assert torch.allclose(model.forward_exit(x, k), model(x), atol=1e-6, rtol=0)
        for delta in (model.exit_fuse_delta[k], model.exit_tail_delta[k]):  # a correction moves the exit
            delta.bias.fill_(0.1)
            assert not torch.allclose(model.forward_exit(x, k), model(x), atol=1e-3, rtol=0)
            delta.bias.zero_()


def test_every_exit_trains_through_exit_l1():
    model = _small().train()
    x, hr = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 24, 24)
    sr, aux = model(x)
    build_objective("exit_l1")(LossInputs(sr=sr, hr=hr, lr=x, scale=2, aux=aux)).backward()
    deltas = (*model.exit_fuse_delta, *model.exit_tail_delta)
    assert all(d.weight.grad is not None and d.weight.grad.abs().sum() > 0 for d in deltas)
    assert model.blocks[0].conv1.weight.grad.abs().sum() > 0


def test_exit_l1_is_the_mean_l1_of_the_exits_and_needs_them():
    hr = torch.zeros(1, 3, 4, 4)
    exits = torch.stack([torch.full_like(hr, 0.2), torch.full_like(hr, 0.4)])
    inputs = LossInputs(sr=hr, hr=hr, lr=hr[..., :2, :2], scale=2, aux={"exit_srs": exits})
    assert build_objective("exit_l1")(inputs).item() == pytest.approx(0.3)
    with pytest.raises(SrlabError, match="the exit_l1 loss needs a model with early exits"):
        build_objective("exit_l1")(LossInputs(sr=hr, hr=hr, lr=hr, scale=2))
    with pytest.raises(SrlabError, match=r"aux\['exit_srs'\] must be shaped \(exits, \*hr.shape\)"):
        build_objective("exit_l1")(LossInputs(sr=hr, hr=hr, lr=hr, scale=2, aux={"exit_srs": exits[0]}))


def test_exit_l1_towards_the_full_output_distills_and_sends_no_gradient_to_it():
    hr = torch.zeros(1, 3, 4, 4)
    sr = torch.full_like(hr, 0.5).requires_grad_()
    exits = torch.stack([torch.full_like(hr, 0.2), torch.full_like(hr, 0.4)]).requires_grad_()
    inputs = LossInputs(sr=sr, hr=hr, lr=hr[..., :2, :2], scale=2, aux={"exit_srs": exits})
    loss = build_objective("exit_l1", params={"target": "full"})(inputs)
    assert loss.item() == pytest.approx(0.2)  # (0.3 + 0.1) / 2
    loss.backward()
    assert sr.grad is None and exits.grad.abs().sum() > 0
    with pytest.raises(SrlabError, match="the exit_l1 loss: target must be one of hr, full, got 'lr'"):
        build_objective("exit_l1", params={"target": "lr"})


def test_an_exit_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"exit must be in 0..3, got 4"):
        _small().forward_exit(torch.rand(1, 3, 6, 6), 4)


def test_the_router_starts_untrained_and_is_saved_with_the_weights(tmp_path):
    model = _small()
    assert not bool(model.router_trained)
    with torch.no_grad():
        model.router_trained.fill_(True)
    save_weights(tmp_path / "w.safetensors", model)
    loaded = srlab.create_model(checkpoint=tmp_path / "w.safetensors")
    assert bool(loaded.router_trained)
    assert all(torch.equal(a, b) for a, b in zip(loaded.router.state_dict().values(), model.router.state_dict().values()))
    diffs, full = loaded.router.predict(torch.rand(5, 3, 16, 16))
    assert diffs.shape == (5, 4) and (diffs[:, -1] == 0).all() and (diffs >= 0).all() and full.shape == (5,)


def test_the_contrast_router_adds_twice_the_log_contrast_and_is_saved(tmp_path):
    model = srlab.create_model("rdsr_adaptive", scale=2, args={**SMALL, "router_contrast": True})
    assert model.router.contrast and model.router.head.in_features == 4 * 16 + 1
    with torch.no_grad():
        model.router.head.weight[:, -1] = 0  # the log contrast reaches the outputs only through 2 log c
    x = torch.rand(4, 3, 16, 16)
    low = 0.5 + (x - 0.5) / 4  # the same patterns at a quarter of the contrast
    with torch.no_grad():
        shift = model.router(x) - model.router(low)
    assert torch.allclose(shift, torch.full_like(shift, 2 * math.log(4)), atol=1e-3)
    save_weights(tmp_path / "w.safetensors", model)
    loaded = srlab.create_model(checkpoint=tmp_path / "w.safetensors")
    assert loaded.router.contrast
    with torch.no_grad():
        assert torch.equal(loaded.router(x), model.router(x))


def test_the_bundled_weights_load_with_the_plain_router_and_a_trained_feature_router():
    model = srlab.create_model("rdsr_adaptive", scale=4, pretrained=True)
    assert not model.router.contrast and model.router.head.in_features == 4 * 16 and bool(model.router_trained)
    assert model.feature_router.features == 32 and bool(model.feature_router_trained)
    method = build_adaptive("rdsr_adaptive", model, knob=0.03)
    assert method.execution == "cascade"
    lr = torch.rand(1, 3, 70, 90)
    sr, stats = method.upscale(lr)
    assert sr.shape == (1, 3, 280, 360) and 0 < stats.measured[0] < stats.measured[1] * 1.2


def test_a_feature_router_removes_the_lr_mean_only_and_reads_either_memory_order():
    from srlab.layers.router import ExitRouter

    torch.manual_seed(0)
    router = ExitRouter(num_routes=3, width=4, features=2).eval()
    x = torch.rand(5, 5, 16, 16)
    shifted_lr, shifted_features = x.clone(), x.clone()
    shifted_lr[:, :3] += 0.3
    shifted_features[:, 3:] += 0.3
    with torch.no_grad():
        out = router(x)
        torch.testing.assert_close(router(shifted_lr), out, rtol=0, atol=1e-5)  # the LR mean is removed
        assert not torch.allclose(router(shifted_features), out, atol=1e-3)  # the features are seen as they are
        torch.testing.assert_close(router(x.contiguous(memory_format=torch.channels_last)), out, rtol=0, atol=1e-5)
