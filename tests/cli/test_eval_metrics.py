"""``srlab eval --metrics / --protocol / --scales``: every metric a JSON key, labelled protocols, one table per scale."""

import json

import pytest

from conftest import write_folder
from srlab.cli.main import main
from srlab.metrics import fsim, gmsd, ms_ssim


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    # MS-SSIM's five scales need >= 176 px after shaving
    return write_folder(tmp_path_factory.mktemp("hr"), {"cat": ("chelsea", (204, 192)), "cup": ("coffee", (192, 204))})


def _eval(capsys, *argv):
    capsys.readouterr()
    code = main(["eval", "--model", "bicubic", "--quiet", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_each_metric_is_a_key_per_dataset_and_per_image(photos, tmp_path, capsys):
    code, stdout, stderr = _eval(capsys, "--scale", "2", "--data", photos, "--metrics", "psnr,ssim,ms_ssim,gmsd,fsim",
                                 "--json", tmp_path / "r.json")
    assert code == 0, stderr
    assert "MS_SSIM" in stdout and "GMSD" in stdout and "FSIM" in stdout
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    keys = {"psnr_y", "ssim_y", "ms_ssim", "gmsd", "fsim"}
    assert keys <= set(result) and all(keys <= set(image) for image in result["images"])
    assert result["gmsd"] == pytest.approx(sum(i["gmsd"] for i in result["images"]) / 2)
    # the CLI's value is the library's on the same pair (SR rounded to 8 bits as saved, `scale` px shaved)
    import torch

    from srlab.data.datasets import discover_pairs, load_pair
    from srlab.data.resize import bicubic_upscale

    pair = next(p for p in discover_pairs(photos, 2).pairs if p.name == "cat")
    lr, hr = load_pair(pair, 2)
    sr = torch.floor(bicubic_upscale(lr, 2, quantize=True).double().clamp(0, 1) * 255 + 0.5) / 255
    cat = next(i for i in result["images"] if i["name"] == "cat")
    assert cat["gmsd"] == pytest.approx(float(gmsd(sr, hr.double(), crop_border=2)), rel=1e-9)
    assert cat["ms_ssim"] == pytest.approx(float(ms_ssim(sr, hr.double(), crop_border=2)), rel=1e-9)
    assert cat["fsim"] == pytest.approx(float(fsim(hr.double(), sr, crop_border=2)), rel=1e-9)


def test_protocol_variants_are_labelled(photos, tmp_path, capsys):
    for protocol, key in (("y8", "psnr_y8"), ("rgb", "psnr_rgb"), ("liif-div2k", "psnr_rgb_liif")):
        code, stdout, stderr = _eval(capsys, "--scale", "3", "--data", photos, "--protocol", protocol,
                                     "--json", tmp_path / f"{protocol}.json")
        assert code == 0, stderr
        assert key.upper() in stdout
        (result,) = json.loads((tmp_path / f"{protocol}.json").read_text())["results"]
        assert key in result and "psnr_y" not in result


def test_one_run_over_several_scales(photos, tmp_path, capsys):
    code, stdout, stderr = _eval(capsys, "--scales", "2", "3", "4", "--data", photos, "--json", tmp_path / "s.json")
    assert code == 0, stderr
    assert [line for line in stdout.splitlines() if line in ("x2", "x3", "x4")] == ["x2", "x3", "x4"]
    results = json.loads((tmp_path / "s.json").read_text())["results"]
    assert [r["scale"] for r in results] == [2, 3, 4]
    assert results[0]["psnr_y"] > results[1]["psnr_y"] > results[2]["psnr_y"]


def test_metric_and_scale_mistakes_are_one_line(photos, capsys):
    code, _, stderr = _eval(capsys, "--scale", "2", "--data", photos, "--metrics", "psnr,lpipz")
    assert code == 2 and "unknown metric 'lpipz'" in stderr and stderr.count("\n") == 1
    code, _, stderr = _eval(capsys, "--scale", "2", "--scales", "2", "3", "--data", photos)
    assert code == 2 and "not both" in stderr
