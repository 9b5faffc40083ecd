"""SR3 (srlab.models.sr3): schedules, samplers, determinism per seed, sizes, tiling refusal, the CLI flags."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import srlab
from conftest import assert_sample_is_a_function_of_the_seed
from srlab.cli.main import main
from srlab.errors import SrlabError
from srlab.inference.upscale import upscale_tensor
from srlab.models.sr3 import cosine_betas, linear_betas, noise_levels, respaced_steps
from srlab.models.weights import save_weights

SMALL = {"channels": 8, "groups": 4}


def test_linear_schedule_runs_from_start_to_end():
    betas = linear_betas(2000, 1e-6, 1e-2)
    assert betas.dtype == torch.float64 and len(betas) == 2000
    assert betas[0].item() == 1e-6 and betas[-1].item() == 1e-2
    assert torch.allclose(betas.diff(), torch.full((1999,), (1e-2 - 1e-6) / 1999, dtype=torch.float64))


def test_cosine_schedule_matches_a_hand_computation():
    s = 8e-3
    f = [math.cos((t / 4 + s) / (1 + s) * math.pi / 2) ** 2 for t in range(5)]
    expected = [min(0.999, 1 - f[t] / f[t - 1]) for t in range(1, 5)]
    assert cosine_betas(4).tolist() == pytest.approx(expected, rel=1e-12, abs=0)
    assert cosine_betas(4)[-1].item() == 0.999  # f(T) ~ 0: clipped


def test_noise_levels_and_respacing():
    betas = linear_betas(10, 0.1, 0.2)
    levels = noise_levels(betas)
    assert levels[0].item() == 1 and levels[-1].item() == pytest.approx(math.sqrt(math.prod(1 - b for b in betas.tolist())))
    assert respaced_steps(2000, 4) == [500, 1000, 1500, 2000]
    assert respaced_steps(7, 7) == list(range(1, 8))


class ExactNoise(nn.Module):
    """A denoiser that knows the clean image: it returns the exact noise in its noisy input."""

    def __init__(self, clean: torch.Tensor) -> None:
        super().__init__()
        self.clean = clean

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        g = level.view(-1, 1, 1, 1)
        return (x[:, 3:] - g * self.clean) / (1 - g.square()).sqrt()


@pytest.mark.parametrize(("sampler", "steps"), [("ddim", 1), ("ddim", 3), ("ddpm", 1), ("ddpm", 5)])
def test_a_denoiser_that_predicts_the_exact_noise_recovers_the_clean_image(sampler, steps):
    # Every step's clean estimate is then exact, DDIM moves to the last level (1) along it in one step, and
    # DDPM's last posterior mean is the clean estimate: the sample is the clean image, whatever the noise.
    torch.manual_seed(0)
    model = srlab.create_model("sr3_tiny", scale=4, args={**SMALL, "sampler": sampler, "steps": steps}).double().eval()
    clean = torch.rand(1, 3, 24, 32, dtype=torch.float64) * 2 - 1  # a multiple of the U-Net's 8: no padding
    model.denoiser = ExactNoise(clean)
    out = model(torch.rand(1, 3, 6, 8, dtype=torch.float64))
    assert (out - (clean + 1) / 2).abs().max() <= 1e-9


def test_a_sample_is_a_function_of_the_seed():
    torch.manual_seed(0)
    assert_sample_is_a_function_of_the_seed(srlab.create_model("sr3_tiny", scale=4, args={**SMALL, "sampler": "ddpm"}).eval())


def test_odd_sizes_are_padded_inside_and_cropped():
    torch.manual_seed(0)
    model = srlab.create_model("sr3", scale=8, args={**SMALL, "res_blocks": 1, "steps": 1}).eval()
    assert model.srlab_spec.info.size_multiple == 16 and model.srlab_spec.info.pad_mode == "inside"
    lr = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        assert model(lr).shape == (2, 3, 40, 56)
        noisy, level, noise = model.draw_training_noise(torch.rand(2, 3, 40, 56))
        assert model(lr, noisy=noisy, noise_level=level).shape == noise.shape == (2, 3, 40, 56)
    assert ((0 < level) & (level <= 1)).all()


def test_tiling_and_too_many_steps_are_refused():
    model = srlab.create_model("sr3_tiny", scale=4, args=SMALL).eval()
    with pytest.raises(SrlabError, match="--tile: model 'sr3_tiny' with diffusion sampling draws its noise"):
        upscale_tensor(model, torch.rand(3, 12, 12), tile=4)
    with pytest.raises(SrlabError, match=r"--steps must be in 1..2000 \(the training schedule's length\), got 2001"):
        model.set_sampler(steps=2001)


@pytest.fixture(scope="module")
def sr3_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr3")
    torch.manual_seed(0)
    save_weights(root / "sr3.safetensors", srlab.create_model("sr3_tiny", scale=4, args=SMALL))
    save_weights(root / "rdsr.safetensors", srlab.create_model("rdsr_s", scale=4, args={"channels": 8, "num_blocks": 1}))
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "in.png")
    return root


def _upscale(files, out, *extra):
    return main(["upscale", str(files / "in.png"), "--checkpoint", str(files / "sr3.safetensors"), "-o", str(out), *extra])


def test_upscale_is_deterministic_for_a_seed(sr3_files, tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert _upscale(sr3_files, tmp_path / name, "--steps", "3", "--seed", seed) == 0
    a, b, c = ((tmp_path / name / "in_x4.png").read_bytes() for name in "abc")
    assert a == b and a != c
    assert Image.open(tmp_path / "a" / "in_x4.png").size == (48, 40)


def test_sampler_flags_and_tiles_are_refused_where_they_do_not_apply(sr3_files, tmp_path, capsys):
    rdsr = ["upscale", str(sr3_files / "in.png"), "--checkpoint", str(sr3_files / "rdsr.safetensors"), "-o", str(tmp_path / "r")]
    assert main([*rdsr, "--steps", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "srlab: error: --steps: model 'rdsr_s' is not a diffusion model (e.g. sr3): drop --steps")
    assert _upscale(sr3_files, tmp_path / "t", "--tile", "4") == 2
    assert "srlab: error: --tile / --stream always: model 'sr3_tiny' with diffusion sampling" in capsys.readouterr().err


def test_macs_count_one_denoiser_evaluation():
    from srlab.models import count_macs
    from srlab.models.complexity import measure_macs

    model = srlab.create_model("sr3_tiny", scale=4, args=SMALL)
    one_step = count_macs(model, (8, 10))
    model.set_sampler(steps=50)
    assert count_macs(model, (8, 10)) == one_step > 0
    meta = srlab.create_model("sr3_tiny", scale=4, args=SMALL).to("meta")
    with torch.no_grad():
        _, denoiser = measure_macs(meta, lambda: meta.denoiser(torch.empty(1, 6, 32, 40, device="meta"),
                                                              torch.ones(1, device="meta")))
    assert denoiser <= one_step < 1.01 * denoiser  # plus the bicubic upsampling's, if counted


def test_eval_takes_the_sampler_flags(sr3_files, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(hr / "a.png")
    scores = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        out = tmp_path / f"{name}.json"
        assert main(["eval", "--checkpoint", str(sr3_files / "sr3.safetensors"), "--data", str(hr), "--quiet",
                     "--steps", "2", "--seed", seed, "--json", str(out)]) == 0
        scores.append(out.read_text())
    assert scores[0] == scores[1] and scores[0] != scores[2]
