"""PCSR, CAMixerSR and SMSR through the one adaptive contract: knob, MACs spent vs full path, histogram,
and the full path (fresh weights here; the released ones are checked in tests/cli/test_adaptive_cli.py)."""

import pytest
import torch

from srlab.adaptive import AdaptiveModel, adaptive_for, build_adaptive
from srlab.errors import SrlabError
from srlab.models.complexity import count_macs
from srlab.models.registry import build_model, model_info


def _built(name, scale=4, **args):
    torch.manual_seed(0)
    return build_model(name, scale=scale, args=args).eval()


def test_adaptive_models_name_their_method():
    assert [model_info(n).adaptive for n in ("arm_carn", "pcsr_carn", "camixersr_s", "smsr", "rdsr_s")] == [
        "arm", "pcsr", "camixersr", "smsr", ""]


def test_pcsr_spends_less_with_a_larger_k_and_its_full_path_sends_every_pixel_heavy():
    model = _built("pcsr_fsrcnn")
    lr = torch.rand(1, 3, 12, 10)
    method = adaptive_for(model, knob=0.0)
    spent = []
    for k in (0.0, 2.0, 10.0):
        method.knob = k
        sr, stats = method.upscale(lr)
        assert sr.shape == (1, 3, 48, 40) and stats.unit == "pixel" and stats.units == 48 * 40
        assert set(stats.histogram()) == {"light", "heavy"}
        spent.append(stats.macs_spent)
    assert spent[0] >= spent[1] >= spent[2] and spent[2] < stats.macs_full
    with torch.no_grad():
        full = method.full_path()(lr)
    assert model.routing == "classifier"  # the full path does not change the model
    assert stats.macs_full == method.full_path().macs_spent((12, 10), 48 * 40) < model.macs_spent((12, 10), 48 * 40)
    heavy_only = build_model("pcsr_fsrcnn", scale=4, args={"routing": "heavy"}).eval()
    heavy_only.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(full, heavy_only(lr), rtol=0, atol=0)


def test_camixersr_counts_attended_windows_and_ratio_one_is_the_full_path():
    model = _built("camixersr_s", n_feats=12, n_blocks=(1, 1))
    lr = torch.rand(1, 3, 32, 32)
    method = adaptive_for(model, knob=0.25)
    sr, stats = method.upscale(lr)
    assert stats.unit == "window" and set(stats.histogram()) == {"convolution", "attention"}
    assert stats.macs_spent < stats.macs_full and model.ratio == 0.5  # the model's own ratio is restored
    method.knob = 1.0
    full_sr, full_stats = method.upscale(lr)
    assert full_stats.histogram()["convolution"] == 0 and full_stats.macs_spent == full_stats.macs_full
    with torch.no_grad():
        torch.testing.assert_close(method.full_path()(lr), full_sr, rtol=0, atol=0)
    assert full_stats.macs_full == count_macs(method.full_path(), (32, 32))


def test_smsr_has_no_knob_and_its_dense_full_path_computes_the_same_image():
    model = _built("smsr", scale=2, n_feats=16)
    lr = torch.rand(1, 3, 16, 18)
    method = adaptive_for(model)
    sr, stats = method.upscale(lr)
    assert stats.unit == "position" and stats.units == 5 * 16 * 18 and stats.macs_spent <= stats.macs_full
    with torch.no_grad():
        torch.testing.assert_close(method.full_path()(lr), sr, rtol=1e-5, atol=1e-5)
    assert model.sparse_inference  # restored after the dense run
    with pytest.raises(SrlabError, match="adaptive method smsr has no knob"):
        adaptive_for(model, knob=0.5)


@pytest.mark.parametrize(("method", "model", "message"), [
    ("pcsr", "rdsr_s", "adaptive method pcsr runs PCSR networks"),
    ("camixersr", "rdsr_s", "adaptive method camixersr runs CAMixerSR networks"),
    ("smsr", "rdsr_s", "adaptive method smsr runs SMSR networks"),
    ("arm", "rdsr_s", "adaptive method arm runs ARM supernets"),
])
def test_a_method_refuses_a_model_of_another_family(method, model, message):
    with pytest.raises(SrlabError, match=message):
        build_adaptive(method, _built(model))


def test_arm_needs_its_table_and_a_static_model_has_no_knob():
    with pytest.raises(SrlabError, match="adaptive method arm needs the supernet's lookup table: give --checkpoint"):
        adaptive_for(_built("arm_fsrcnn"))
    with pytest.raises(SrlabError, match="model 'rdsr_s' is not content-adaptive and has no knob"):
        adaptive_for(_built("rdsr_s"), knob=1.0)


def test_the_adaptive_model_wrapper_keeps_the_stats_of_every_call():
    model = _built("pcsr_fsrcnn")
    wrapper = AdaptiveModel(adaptive_for(model), model)
    with torch.no_grad():
        wrapper(torch.rand(1, 3, 8, 8))
        wrapper(torch.rand(1, 3, 8, 8))
    calls = wrapper.take_calls()
    assert len(calls) == 2 and wrapper.calls == [] and wrapper.srlab_spec.name == "pcsr_fsrcnn"


def test_full_path_macs_are_counted_once_per_size_not_on_every_image(monkeypatch):
    """A meta-device count takes longer than a CAMixerSR forward: it must not run (and be timed) per image."""
    import srlab.adaptive.costs as costs
    import srlab.models.pcsr as pcsr_module

    traced = []
    for module in (costs, pcsr_module):
        real = module.count_macs
        monkeypatch.setattr(module, "count_macs", lambda net, hw, real=real: traced.append(hw) or real(net, hw))
    camixer = adaptive_for(_built("camixersr_s", n_feats=12, n_blocks=(1, 1)), knob=0.25)
    pcsr = adaptive_for(_built("pcsr_fsrcnn"))
    for _ in range(3):
        camixer.upscale(torch.rand(1, 3, 32, 32))
        pcsr.upscale(torch.rand(1, 3, 12, 10))
    assert sorted(traced) == [(12, 10), (32, 32)]  # PCSR's backbone once, CAMixerSR's full path once
