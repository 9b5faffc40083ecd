"""ResShift (srlab.models.resshift): the official schedule, the forward process, the sampler (an oracle
denoiser recovers the clean image, seeds, respacing), sizes, the official structure's names, refusals."""

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
from srlab.models import count_macs
from srlab.models.resshift import eta_schedule, respaced_steps, shifted_window_mask, skip_weights
from srlab.models.weights import save_weights

# The official process (resshift_tiny's own defaults are kappa 0.5, min_noise_level 0.05, residual prediction).
SMALL = {"channels": 8, "groups": 4, "swin_embed_dim": 16, "kappa": 2.0, "min_noise_level": 0.2, "prediction": "clean"}


def _official_sqrt_etas(steps, kappa, min_noise_level, etas_end, power):
    """The official exponential schedule in closed form: start * (end / start)^(((t-1)/(T-1))^p), t = 1..T."""
    start = min(min_noise_level / kappa, min_noise_level)
    return [start * (etas_end / start) ** (((t - 1) / (steps - 1)) ** power) for t in range(1, steps + 1)]


@pytest.mark.parametrize(("steps", "kappa", "min_noise_level"), [(15, 2.0, 0.04), (4, 2.0, 0.2), (6, 0.5, 0.1)])
def test_the_schedule_is_the_official_exponential_one(steps, kappa, min_noise_level):
    sqrt_etas = eta_schedule(steps, kappa=kappa, min_noise_level=min_noise_level, etas_end=0.99, power=0.3)
    assert sqrt_etas.dtype == torch.float64
    assert sqrt_etas.tolist() == pytest.approx(_official_sqrt_etas(steps, kappa, min_noise_level, 0.99, 0.3), rel=1e-12)
    # the first step's noise std is min_noise_level (for kappa >= 1), the last eta is etas_end^2
    assert sqrt_etas[0].item() == pytest.approx(min(min_noise_level / kappa, min_noise_level), rel=1e-12)
    assert sqrt_etas[-1].item() == pytest.approx(0.99, rel=1e-12)
    assert (sqrt_etas.diff() > 0).all()
    with pytest.raises(ValueError, match="train_steps must be at least 2, got 1"):
        eta_schedule(1, kappa=2.0, min_noise_level=0.2, etas_end=0.99, power=0.3)


def test_respacing_is_the_official_space_timesteps():
    assert respaced_steps(15, 15) == list(range(15))
    assert respaced_steps(15, 4) == [0, 3, 7, 11]  # int(15/4 * i)
    assert respaced_steps(4, 2) == [0, 2]
    assert respaced_steps(4, 1) == [0]


def test_the_forward_process_shifts_the_residual_and_adds_scaled_noise():
    torch.manual_seed(0)
    model = srlab.create_model("resshift_tiny", scale=4, args=SMALL)
    hr, lr = torch.rand(512, 3, 8, 8), torch.rand(512, 3, 2, 2)
    torch.manual_seed(1)
    draw = model.draw_training(lr, hr)
    torch.manual_seed(1)  # the same draws, in the official order: the steps, then the noise
    step = torch.randint(0, 4, (512,))
    noise = torch.randn_like(hr)
    assert torch.equal(draw.inputs["step"], step)
    eta = model.sqrt_etas.square()[step].float().view(-1, 1, 1, 1)
    x0, y0 = hr * 2 - 1, model.upsample(lr)
    mean = x0 + eta * (y0 - x0)
    assert torch.allclose(draw.inputs["noisy"], mean + 2.0 * eta.sqrt() * noise, atol=1e-6)
    # the marginal: per step, (x_t - mean) / (kappa sqrt(eta_t)) is standard normal
    for t in range(4):
        residual = ((draw.inputs["noisy"] - mean) / (2.0 * eta.sqrt()))[step == t]
        assert abs(residual.mean().item()) < 0.02 and abs(residual.std().item() - 1) < 0.02


def test_train_step_weights_set_how_often_each_step_is_drawn():
    torch.manual_seed(0)
    model = srlab.create_model("resshift_tiny", scale=4, args={**SMALL, "train_step_weights": (0, 1, 0, 3)})
    hr, lr = torch.rand(4000, 3, 8, 8), torch.rand(4000, 3, 2, 2)
    torch.manual_seed(1)
    draw = model.draw_training(lr, hr)
    step = draw.inputs["step"]
    counts = torch.bincount(step, minlength=4).tolist()
    assert counts[0] == counts[2] == 0  # weight 0: never drawn
    assert abs(counts[3] / 4000 - 0.75) < 0.03 and counts[1] + counts[3] == 4000
    # the drawn steps make x_t as the uniform draw does (the process is unchanged, only the steps' frequencies)
    eta = model.sqrt_etas.square()[step].float().view(-1, 1, 1, 1)
    x0, y0 = hr * 2 - 1, model.upsample(lr)
    residual = (draw.inputs["noisy"] - x0 - eta * (y0 - x0)) / (2.0 * eta.sqrt())
    assert abs(residual.mean().item()) < 0.01 and abs(residual.std().item() - 1) < 0.01
    for bad in [(1, 1, 1), (0, 0, 0, 0), (1, -1, 1, 1), (1, float("nan"), 1, 1)]:
        with pytest.raises(SrlabError, match="train_step_weights needs 4 finite weights >= 0"):
            srlab.create_model("resshift_tiny", scale=4, args={**SMALL, "train_step_weights": bad})


class Oracle(nn.Module):
    """A denoiser that knows the clean image: it returns it, and records the steps it is asked at."""

    def __init__(self, clean: torch.Tensor) -> None:
        super().__init__()
        self.clean, self.steps = clean, []

    def forward(self, x: torch.Tensor, steps: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        self.steps.append(steps.tolist())
        return self.clean


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_a_denoiser_that_predicts_the_clean_image_makes_the_sampler_return_it(steps):
    # The last posterior mean is the predicted x_0 (eta_0 = 0): the sample is the clean image, whatever the noise.
    torch.manual_seed(0)
    model = srlab.create_model("resshift_tiny", scale=4, args={**SMALL, "steps": steps}).double().eval()
    clean = torch.rand(2, 3, 32, 64, dtype=torch.float64) * 2 - 1  # a multiple of the U-Net's 32: no padding
    model.denoiser = Oracle(clean)
    out = model(torch.rand(2, 3, 8, 16, dtype=torch.float64))
    assert (out - (clean + 1) / 2).abs().max() <= 1e-6
    # the respaced chain visits the official steps, last first, with their original indices
    assert model.denoiser.steps == [[t, t] for t in reversed(respaced_steps(4, steps))]


def test_a_residual_model_predicts_the_correction_of_y0_and_starts_as_the_bicubic_upsampling():
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 8, 16, dtype=torch.float64)  # a multiple of the U-Net's 32 at x4: no padding
    model = srlab.create_model("resshift_tiny", scale=4, args={**SMALL, "prediction": "residual"}).double().eval()
    y0 = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.equal(model(lr), ((y0 * 2 - 1).clamp(-1, 1) + 1) / 2)  # zero-initialised output conv
    clean = torch.rand(1, 3, 32, 64, dtype=torch.float64) * 2 - 1
    model.denoiser = Oracle(clean - (y0 * 2 - 1))  # the correction that makes y_0 the clean image
    assert (model(lr) - (clean + 1) / 2).abs().max() <= 1e-6
    with pytest.raises(SrlabError, match="prediction must be one of clean, residual, preconditioned, got .noise."):
        srlab.create_model("resshift_tiny", scale=4, args={**SMALL, "prediction": "noise"})


@pytest.mark.parametrize("kappa", [0.5, 2.0])
def test_the_skip_weight_is_the_least_squares_estimate_of_the_residual(kappa):
    residual_std = 0.1
    sqrt_etas = eta_schedule(4, kappa=kappa, min_noise_level=0.05, etas_end=0.99, power=0.3)
    weights = skip_weights(sqrt_etas, kappa=kappa, residual_std=residual_std)
    generator = torch.Generator().manual_seed(0)
    residual = torch.randn(400_000, generator=generator, dtype=torch.float64) * residual_std
    noise = torch.randn(400_000, generator=generator, dtype=torch.float64)
    for t, sqrt_eta in enumerate(sqrt_etas.tolist()):
        shifted = (1 - sqrt_eta**2) * residual + kappa * sqrt_eta * noise  # x_t - y_0
        fitted = (residual * shifted).sum() / shifted.square().sum()  # least squares: residual ~ c * shifted
        assert weights[t].item() == pytest.approx(fitted.item(), abs=0.005)
    assert (weights.diff() < 0).all() and weights[0] > 0.75 and weights[-1] < 0.01  # from near x_t to near y_0


def test_a_preconditioned_model_adds_its_output_to_the_linear_estimate_and_temperature_scales_the_noise():
    torch.manual_seed(0)
    lr = 0.4 + 0.2 * torch.rand(1, 3, 8, 16, dtype=torch.float64)  # mid-grey: the samples below are not clipped
    args = {**SMALL, "kappa": 0.5, "min_noise_level": 0.05, "prediction": "preconditioned"}
    model = srlab.create_model("resshift_tiny", scale=4, args=args).double().eval()
    y0 = model.upsample(lr)
    noisy, step = y0 + 0.3 * torch.randn_like(y0), torch.tensor([1])
    # zero-initialised output conv: the prediction is the linear estimate y_0 + c_t (x_t - y_0)
    assert torch.allclose(model(lr, noisy=noisy, step=step), y0 + model.skip_weights[1] * (noisy - y0), atol=1e-12)
    # the sample's departure from y_0 is then linear in the drawn noises, which the temperature scales
    departures = {}
    for temperature in (0.0, 0.5, 1.0):
        model.temperature = temperature
        departures[temperature] = model(lr) * 2 - 1 - y0
    assert departures[0.0].abs().max() < 1e-12 and departures[1.0].abs().max() > 1e-3
    assert torch.allclose(departures[0.5], departures[1.0] / 2, atol=1e-12)
    refusals = [({"residual_std": 0.0}, "residual_std must be > 0"), ({"temperature": -1.0}, "temperature must be >= 0")]
    for bad, match in refusals:
        with pytest.raises(SrlabError, match=match):
            srlab.create_model("resshift_tiny", scale=4, args={**args, **bad})


def test_the_sampler_starts_from_the_shifted_prior_and_scales_its_input():
    torch.manual_seed(0)
    model = srlab.create_model("resshift_tiny", scale=4, args={**SMALL, "steps": 1}).double().eval()
    seen = []

    class Record(nn.Module):
        def forward(self, x, steps, lq):
            seen.append((x, lq))
            return torch.zeros_like(x)

    model.denoiser = Record()
    lr = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    model(lr)
    y0 = model.upsample(lr)
    noise = torch.randn(y0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # seed 1
    sqrt_eta = model.sqrt_etas[0].item()
    x_t = y0 + 2.0 * sqrt_eta * noise
    assert torch.allclose(seen[0][0], x_t / (3 * 2.0 * sqrt_eta + 1)) and torch.equal(seen[0][1], y0)


def test_a_sample_is_a_function_of_the_seed():
    torch.manual_seed(0)
    assert_sample_is_a_function_of_the_seed(srlab.create_model("resshift_tiny", scale=4, args=SMALL).eval())


def test_odd_sizes_are_padded_inside_and_cropped():
    torch.manual_seed(0)
    model = srlab.create_model("resshift_tiny", scale=2, args={**SMALL, "steps": 1}).eval()
    assert model.srlab_spec.info.size_multiple == 32 and model.srlab_spec.info.pad_mode == "inside"
    lr = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        assert model(lr).shape == (2, 3, 10, 14)
        draw = model.draw_training(lr, torch.rand(2, 3, 10, 14))
        assert model(lr, **draw.inputs).shape == draw.target.shape == (2, 3, 10, 14)


def test_the_denoiser_has_the_official_names_and_masks():
    model = srlab.create_model("resshift_tiny", scale=4)
    shapes = {k: tuple(v.shape) for k, v in model.denoiser.state_dict().items()}
    # official UNetModelSwin: the input conv takes x_t and lq (3 + 3 channels)
    assert shapes["input_blocks.0.0.weight"] == (16, 6, 3, 3)
    assert shapes["time_embed.2.weight"] == (64, 64)
    assert shapes["input_blocks.1.0.emb_layers.1.weight"] == (32, 64)  # scale and shift: 2 x 16
    assert shapes["input_blocks.2.0.op.weight"] == (16, 16, 3, 3)
    # the Swin layer after level 2's first block (16x16 at image_size 64: window 8, second block shifted by 4)
    swin = "input_blocks.5.1"
    assert shapes[f"{swin}.patch_embed.proj.weight"] == (32, 32, 1, 1)
    assert shapes[f"{swin}.blocks.0.attn.relative_position_bias_table"] == (225, 4)
    assert shapes[f"{swin}.blocks.0.attn.relative_position_index"] == (64, 64)
    assert f"{swin}.blocks.0.attn_mask" not in shapes and shapes[f"{swin}.blocks.1.attn_mask"] == (4, 64, 64)
    assert shapes[f"{swin}.blocks.1.mlp.fc1.weight"] == (64, 32, 1, 1)
    assert shapes["middle_block.1.patch_unembed.proj.weight"] == (32, 32, 1, 1)
    assert shapes["out.2.weight"] == (3, 16, 3, 3)


def test_the_shifted_window_mask_is_the_official_one():
    # regions by rows only (0..h-w-1, h-w..h-s-1, h-s..h-1), labels flattened column-major per window
    mask = shifted_window_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert (mask[0] == 0).all() and (mask[1] == 0).all()  # the top windows hold one region
    label = torch.tensor([0, 0, 1, 1] * 4)  # bottom windows: position c * 4 + r has region (r >= 2)
    assert torch.equal(mask[2], (label[None, :] != label[:, None]).float() * -100)
    assert torch.equal(mask[3], mask[2])


def test_tiling_and_too_many_steps_are_refused():
    model = srlab.create_model("resshift_tiny", scale=4, args=SMALL).eval()
    with pytest.raises(SrlabError, match="--tile: model 'resshift_tiny' with diffusion sampling draws its noise"):
        upscale_tensor(model, torch.rand(3, 12, 12), tile=4)
    refusal = r"--steps must be in 1..4 \(ResShift's trained chain; fewer respace it\), got 5"
    with pytest.raises(SrlabError, match=refusal):
        model.set_sampler(steps=5)


def test_macs_count_one_denoiser_evaluation():
    from srlab.models.complexity import measure_macs

    model = srlab.create_model("resshift_tiny", scale=4, args=SMALL)
    one_step = count_macs(model, (8, 10))
    model.set_sampler(steps=1)
    assert count_macs(model, (8, 10)) == one_step > 0
    meta = srlab.create_model("resshift_tiny", scale=4, args=SMALL).to("meta")
    x, steps = torch.empty(1, 3, 32, 64, device="meta"), torch.zeros(1, dtype=torch.long, device="meta")
    with torch.no_grad():
        _, denoiser = measure_macs(meta, lambda: meta.denoiser(x, steps, x))
    assert denoiser <= one_step < 1.01 * denoiser  # plus the bicubic upsampling's, if counted


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("resshift")
    torch.manual_seed(0)
    save_weights(root / "resshift.safetensors", srlab.create_model("resshift_tiny", scale=4, args=SMALL))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(root / "in.png")
    return root


def test_upscale_is_deterministic_for_a_seed(weights, tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(["upscale", str(weights / "in.png"), "--checkpoint", str(weights / "resshift.safetensors"),
                     "-o", str(tmp_path / name), "--steps", "2", "--seed", seed]) == 0
    a, b, c = ((tmp_path / name / "in_x4.png").read_bytes() for name in "abc")
    assert a == b and a != c
    assert Image.open(tmp_path / "a" / "in_x4.png").size == (48, 40)


@pytest.mark.slow
def test_the_full_model_is_the_official_realsr_configuration():
    # configs/realsr_swinunet_realesrgan256.yaml's UNet (118.6M) and 15-step schedule; one denoiser pass at 64x64
    model = srlab.create_model("resshift", scale=4).eval()
    assert model.train_steps == model.steps == 15 and model.multiple == 64
    assert sum(p.numel() for p in model.parameters()) == 118_593_583
    assert model.sqrt_etas.tolist() == pytest.approx(_official_sqrt_etas(15, 2.0, 0.04, 0.99, 0.3), rel=1e-12)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 16, 16), noisy=torch.rand(1, 3, 64, 64), step=torch.tensor([14]))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
