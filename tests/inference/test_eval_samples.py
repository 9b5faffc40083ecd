"""``srlab eval --samples K``: several samples per image of a diffusion model, their mean and spread."""

import json
import statistics

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from srlab.cli.main import main
from srlab.data.datasets import discover_pairs
from srlab.errors import SrlabError
from srlab.inference.evaluate import evaluate_folder, iter_folder
from srlab.inference.upscale import upscale_tensor
from srlab.metrics.accumulator import ScoreAccumulator
from srlab.models.weights import save_weights

SMALL = {"channels": 8, "groups": 4, "steps": 2}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    torch.manual_seed(0)
    save_weights(root / "sr3.safetensors", srlab.create_model("sr3_tiny", scale=4, args=SMALL))
    rdsr = srlab.create_model("rdsr_s", scale=4, args={"channels": 8, "num_blocks": 1})
    save_weights(root / "rdsr.safetensors", rdsr)
    (root / "hr").mkdir()
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(root / "hr" / f"{name}.png")
    return root


def _eval(files, out, *extra, weights="sr3.safetensors"):
    return main(["eval", "--checkpoint", str(files / weights), "--data", str(files / "hr"), "--quiet",
                 "--json", str(out), *extra])


def _results(path):
    return json.loads(path.read_text())["results"][0]


def test_one_sample_is_the_plain_evaluation(files, tmp_path):
    assert _eval(files, tmp_path / "plain.json", "--seed", "4") == 0
    assert _eval(files, tmp_path / "one.json", "--seed", "4", "--samples", "1") == 0
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "plain.json").read_bytes()


def test_samples_are_the_runs_of_consecutive_seeds_with_their_mean_and_spread(files, tmp_path, capsys):
    single = []
    for seed in (4, 5, 6):
        assert _eval(files, tmp_path / f"seed{seed}.json", "--seed", str(seed)) == 0
        single.append(_results(tmp_path / f"seed{seed}.json"))
    capsys.readouterr()
    assert _eval(files, tmp_path / "three.json", "--seed", "4", "--samples", "3") == 0
    table = capsys.readouterr().out.splitlines()
    result = _results(tmp_path / "three.json")
    sampling = result["sampling"]
    assert sampling["count"] == 3 and sampling["seeds"] == [4, 5, 6]
    for key in ("psnr_y", "ssim_y"):
        # each seed's set score is what that seed alone gives
        assert [s[key] for s in sampling["per_seed"]] == pytest.approx([r[key] for r in single], rel=1e-12)
        assert sampling["min"][key] == min(r[key] for r in single)
        assert sampling["max"][key] == max(r[key] for r in single)
        assert result[key] == pytest.approx(statistics.fmean(r[key] for r in single), rel=1e-12)
        per_image = [[r["images"][i][key] for r in single] for i in range(2)]
        assert [image[key] for image in result["images"]] == pytest.approx([statistics.fmean(v) for v in per_image])
        assert sampling["std"][key] == pytest.approx(statistics.fmean(statistics.pstdev(v) for v in per_image))
        assert sampling["std"][key] > 0  # random weights: the seeds give different images
    assert [s["psnr_y"] for s in result["images"][0]["samples"]] == [r["images"][0]["psnr_y"] for r in single]
    row, mean_row = table[1], table[2]
    assert f"{result['psnr_y']:.4f}±{sampling['std']['psnr_y']:.4f}" in row and "3 samples, seeds 4..6" in row
    assert f"{sampling['mean_image']['psnr_y']:.4f}" in mean_row and "the mean image of the 3 samples" in mean_row


def test_the_mean_image_is_the_average_of_the_samples(files):
    model = srlab.create_model(checkpoint=files / "sr3.safetensors").eval()
    model.set_sampler(seed=7)
    folder = discover_pairs(files / "hr", 4)
    result = evaluate_folder(model, folder, samples=2)
    assert model.seed == 7  # the model's own seed is put back
    accumulator = ScoreAccumulator()
    for _, lr, hr in iter_folder(folder, 4):
        images = []
        for seed in (7, 8):
            model.set_sampler(seed=seed)
            images.append(upscale_tensor(model, lr).double())
        accumulator.update(((images[0] + images[1]) / 2).float(), hr, 4)
    assert result.sampling.mean_image == pytest.approx(accumulator.compute(), rel=1e-12)


def test_samples_are_refused_for_models_without_a_sampler(files, tmp_path, capsys):
    assert _eval(files, tmp_path / "r.json", "--samples", "2", weights="rdsr.safetensors") == 2
    assert capsys.readouterr().err.strip() == (
        "srlab: error: --samples 2: model 'rdsr_s' is not a diffusion model (e.g. sr3): it gives one output per "
        "image, drop --samples")
    assert not (tmp_path / "r.json").exists()
    assert _eval(files, tmp_path / "one.json", "--samples", "1", weights="rdsr.safetensors") == 0
    model = srlab.create_model(checkpoint=files / "rdsr.safetensors").eval()
    with pytest.raises(SrlabError, match=r"^--samples 0: must be at least 1$"):
        evaluate_folder(model, discover_pairs(files / "hr", 4), samples=0)
