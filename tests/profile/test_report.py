"""The profile of one model: counts equal the library's, #Acts reproduces the papers', memory is sane."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import srlab
from srlab.models import count_parameters, paper_parameter_count
from srlab.profile import count_activations, count_macs, cpu_peak_memory, macs_720p, profile_model
from srlab.models.complexity import lr_size_for_720p

# ----------------------------------------------------------------------------- activations


def test_activations_hand_counted():
    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.up = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)
            self.w = nn.Parameter(torch.zeros(5, 8, 1, 1))

        def forward(self, x):
            y = torch.relu(self.dw(self.a(x)))  # the ReLU's output is not a conv output: not counted
            z = nn.functional.conv2d(y, self.w)  # functional convolutions count too
            return self.up(y) + z.mean()

    h, w = 10, 12
    expected = h * w * 8 + h * w * 8 + h * w * 5 + (2 * h) * (2 * w) * 3
    model = Toy()
    assert count_activations(model, (h, w)) == expected
    assert next(model.parameters()).device.type == "cpu"  # counted on a meta copy


# Published "#Acts" (elements of all conv outputs): at 1280x720 output from SAFMN's efficiency table (IMDN,
# SAFMN, CARN, ESPCN, FSRCNN; /work/shared/reference/paper-results.md), at a 256x256 LR input from the
# NTIRE 2022 ESR results table (RFDN, RLFN). Rounded as published.
@pytest.mark.parametrize(("name", "published"), [
    ("imdn", (423, 190, 108)),
    ("safmn", (299, 134, 77)),
    ("carn_m", (655, 327, 227)),
    ("carn", (522, 268, 194)),
    ("espcn", (23, None, 6)),
    ("fsrcnn", (41, 19, 11)),
])
def test_activations_match_published_720p(name, published):
    for scale, figure in zip((2, 3, 4), published):
        if figure is None:
            continue
        model = srlab.deploy(srlab.create_model(name, scale=scale))
        assert round(count_activations(model, lr_size_for_720p(scale)) / 1e6) == figure, (name, scale)


@pytest.mark.parametrize(("name", "published_256", "published_720p"), [
    ("rfdn_aim", 112.03, 98.46),  # NTIRE'22 / '23 baseline row; SAFMN's ESR table at 720p
    ("rlfn_ntire", 80.05, None),  # NTIRE'22 winner
])
def test_activations_match_ntire(name, published_256, published_720p):
    model = srlab.deploy(srlab.create_model(name, scale=4))
    assert round(count_activations(model, (256, 256)) / 1e6, 2) == published_256
    if published_720p is not None:
        assert round(count_activations(model, (180, 320)) / 1e6, 2) == published_720p


def test_edsr_baseline_counts_its_mean_shift_convs():
    """SAFMN's table lists EDSR-baseline at 563 / 285 / 202 M: it leaves out the two 1x1 MeanShift convs
    (3 channels at LR and at HR), which srlab counts as the convolutions they are."""
    for scale, published in zip((2, 3, 4), (563, 285, 202)):
        h, w = lr_size_for_720p(scale)
        acts = count_activations(srlab.create_model("edsr_baseline", scale=scale), (h, w))
        mean_shift = 3 * h * w + 3 * (h * scale) * (w * scale)
        assert round((acts - mean_shift) / 1e6) == published, scale


# ----------------------------------------------------------------------------- the profile


@pytest.mark.parametrize(("name", "scale"), [("rdsr_s", 4), ("imdn", 2), ("bicubic", 3)])
def test_profile_equals_the_library_functions(name, scale):
    model = srlab.create_model(name, scale=scale)
    profile = profile_model(model, threads=1, repeats=3, warmup=1, lr_size=(16, 20), memory=False)
    fused = srlab.deploy(model)
    assert (profile.model, profile.scale) == (name, scale)
    assert profile.params == paper_parameter_count(model)
    assert profile.params_total == count_parameters(model)
    assert profile.params_trainable == count_parameters(model, trainable_only=True)
    assert profile.params_deploy == count_parameters(fused)
    assert profile.macs_720p == macs_720p(fused) and isinstance(profile.macs_720p, int)
    assert profile.macs_256 == count_macs(fused, (256, 256))
    assert profile.acts_720p == count_activations(fused, lr_size_for_720p(scale))
    assert profile.acts_256 == count_activations(fused, (256, 256))
    assert profile.lr_size_720p == lr_size_for_720p(scale) and profile.lr_size == (16, 20)
    assert profile.latency_ms > 0 and profile.latency_iqr_ms >= 0 and profile.threads == 1
    assert profile.peak_memory_mb is None
    if name == "bicubic":
        assert profile.params == profile.macs_720p == profile.acts_720p == 0
    else:
        assert profile.params > 0 and profile.macs_720p > profile.acts_720p > 0
    data = json.loads(json.dumps(profile.to_json()))  # JSON-serialisable as it is
    for key in ("params", "macs_720p", "macs_256", "latency_ms", "peak_memory_mb"):
        assert key in data


def test_profile_of_a_reparameterisable_model_uses_the_deploy_form():
    model = srlab.create_model("ecbsr", scale=2)
    profile = profile_model(model, latency=False, memory=False)
    fused = srlab.deploy(model)
    assert profile.form == "deploy"
    assert profile.params_total == count_parameters(model) > profile.params_deploy == count_parameters(fused)
    assert profile.macs_720p == macs_720p(fused) < macs_720p(model)
    assert profile.latency_ms is None and profile.latency is None


def test_profile_leaves_the_model_untouched():
    model = srlab.create_model("rdsr_s", scale=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    profile_model(model, threads=1, repeats=2, warmup=0, lr_size=(8, 8), memory=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.get_num_threads() == threads


# ----------------------------------------------------------------------------- memory


def test_rss_growth_sees_torch_allocations():
    """A 64 MiB tensor filled during the run shows as about 64 MiB of peak growth (tracemalloc would see
    nothing of it). Measured in a fresh interpreter: a long-lived process (this pytest run) reuses memory
    it freed earlier, which is why srlab profiles CPU memory in a fresh process too."""
    code = (
        "import torch; from srlab.profile.memory import measure_rss_growth; "
        "g, m = measure_rss_growth(lambda: torch.ones(16 * 2**20).sum()); print(g, m)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    growth, method = out.split(" ", 1)
    assert "RSS" in method
    assert 60 <= int(float(growth)) / 2**20 <= 90, growth


@pytest.mark.slow
def test_cpu_peak_memory_in_a_fresh_process_scales_with_the_image():
    """Measured here (rdsr_s x4, 1 thread): 5.3 MiB at 45x80, 19.6 MiB at 90x160 LR; the output alone
    is 0.66 / 2.6 MiB. Four times the pixels: about four times the memory."""
    model = srlab.create_model("rdsr_s", scale=4)
    small, method = cpu_peak_memory(model, (45, 80), threads=1)
    large, _ = cpu_peak_memory(model, (90, 160), threads=1)
    output_large = 3 * 360 * 640 * 4
    assert "fresh process" in method
    assert output_large < large < 40 * output_large
    assert 2.5 < large / small < 6, (small, large)


def test_profile_reports_cpu_memory():
    profile = profile_model(srlab.create_model("bicubic", scale=2), threads=1, repeats=1, warmup=0, lr_size=(64, 64))
    assert profile.peak_memory_mb > 3 * 128 * 128 * 4 / 2**20  # at least its output
    assert "RSS" in profile.peak_memory_method


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_profile_on_cuda():
    model = srlab.create_model("rdsr_s", scale=4)
    profile = profile_model(model, device="cuda", repeats=5, warmup=2)
    weights = count_parameters(model) * 4
    output = 3 * 720 * 1280 * 4
    assert profile.peak_memory_mb * 2**20 > weights + output
    assert "max_memory_allocated" in profile.peak_memory_method
    assert profile.latency_ms > 0 and profile.device.startswith("cuda")
