"""``srlab eval --metrics lpips,dists,niqe --metric_weights KEY=PATH``: learned metrics from local files.

The weight files are random stand-ins written here (no real weights offline): what is checked is that the
CLI loads the named files, scores the pair the protocol scores (SR rounded to 8 bits, `scale` px shaved)
exactly as the library does, and names the missing file when one is not given."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_folder
from srlab.cli.main import main
from srlab.metrics import DISTS, LPIPS, NIQE, fit_niqe_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
from test_dists import alpha_beta, vgg16_state  # noqa: E402  (random weight files with the official names)
from test_lpips import lin_state, torchvision_state  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.save(torchvision_state("alexnet"), root / "alexnet.pth")
    torch.save(lin_state("alex"), root / "alex_lin.pth")
    torch.save(vgg16_state(), root / "vgg16.pth")
    torch.save(alpha_beta(), root / "dists.pt")
    photos = write_folder(root / "pristine", {"a": ("astronaut", (256, 256)), "c": ("coffee", (256, 256))})
    from srlab.data.io import read_rgb

    model = fit_niqe_model([read_rgb(p) for p in sorted(photos.iterdir())])
    np.savez(root / "niqe.npz", mu_prisparam=model.mu.numpy(), cov_prisparam=model.cov.numpy())
    return root


def test_learned_metrics_are_keys_and_equal_the_library(files, tmp_path, capsys):
    hr_dir = write_folder(tmp_path / "hr", {"cat": ("chelsea", (204, 200))})  # NIQE: >= one 96x96 block
    argv = [
        "eval", "--model", "bicubic", "--scale", "2", "--data", hr_dir, "--quiet", "--metrics", "psnr,ssim,lpips,dists,niqe",
        "--metric_weights", f"lpips_backbone={files / 'alexnet.pth'}", "--metric_weights", f"lpips_lin={files / 'alex_lin.pth'}",
        "--metric_weights", f"dists_backbone={files / 'vgg16.pth'}", "--metric_weights", f"dists={files / 'dists.pt'}",
        "--metric_weights", f"niqe={files / 'niqe.npz'}", "--json", tmp_path / "r.json",
    ]
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    (image,) = json.loads((tmp_path / "r.json").read_text())["results"][0]["images"]

    from srlab.data.datasets import discover_pairs, load_pair
    from srlab.data.resize import bicubic_upscale

    lr, hr = load_pair(discover_pairs(hr_dir, 2).pairs[0], 2)
    sr = torch.floor(bicubic_upscale(lr, 2, quantize=True).double().clamp(0, 1) * 255 + 0.5) / 255
    sr, hr = sr[:, 2:-2, 2:-2], hr.double()[:, 2:-2, 2:-2]
    lpips = LPIPS("alex", lin_weights=files / "alex_lin.pth", backbone_weights=files / "alexnet.pth").double()
    dists = DISTS(weights=files / "dists.pt", backbone_weights=files / "vgg16.pth").double()
    assert image["lpips"] == pytest.approx(float(lpips(sr, hr)), rel=1e-9)
    assert image["dists"] == pytest.approx(float(dists(sr, hr)), rel=1e-9)
    assert image["niqe"] == pytest.approx(float(NIQE(files / "niqe.npz")(sr)), rel=1e-9)


def test_a_missing_weight_file_is_named(files, tmp_path, capsys):
    hr_dir = write_folder(tmp_path / "hr", {"cat": ("chelsea", (60, 48))})
    capsys.readouterr()
    code = main(["eval", "--model", "bicubic", "--scale", "2", "--data", str(hr_dir), "--metrics", "lpips",
                 "--metric_weights", f"lpips_lin={files / 'alex_lin.pth'}"])
    err = capsys.readouterr().err
    assert code == 2 and "--metric_weights lpips_backbone=PATH" in err and "alexnet-owt-7be5be79.pth" in err
    code = main(["eval", "--model", "bicubic", "--scale", "2", "--data", str(hr_dir), "--metric_weights", "lpip=x"])
    assert code == 2 and "unknown key 'lpip'" in capsys.readouterr().err
