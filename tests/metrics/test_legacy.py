"""The bicubic rows copied across SR papers, reproduced by the Y-only pipeline (srlab.metrics.legacy)."""

import pytest
import torch

from conftest import BENCHMARKS, needs_benchmarks, photo
from srlab.metrics.legacy import legacy_luma, y_only_bicubic_baseline, y_only_bicubic_scores

# paper-results.md §5 (identical in IMDN's, SMSR's and SAFMN's tables): PSNR / SSIM.
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}


@needs_benchmarks
@pytest.mark.parametrize(("dataset", "scale"), sorted(PUBLISHED))
def test_published_bicubic_rows_are_reproduced(dataset, scale):
    result = y_only_bicubic_baseline(BENCHMARKS / dataset, scale)
    want_psnr, want_ssim = PUBLISHED[(dataset, scale)]
    assert result.images == {"Set5": 5, "Set14": 14}[dataset]
    assert abs(result.psnr_y8 - want_psnr) <= 0.01, result
    # Set14 x3 / x4 SSIM come out 0.0006 / 0.0008 under the printed value, every other within 0.0002.
    assert abs(result.ssim_y8 - want_ssim) <= 0.001, result


@needs_benchmarks
def test_set14_greyscale_file_is_scored_on_its_own_values():
    # img_003 is a greyscale PNG: MATLAB code skips rgb2ycbcr for 2-D images. Taking its Y instead (range
    # 16..235) would score it 1.3 dB higher and put the set mean 0.094 dB above the published 30.24.
    from srlab.data.datasets import modcrop
    from srlab.data.io import read_image

    image = read_image(BENCHMARKS / "Set14" / "HR" / "img_003.png")
    assert image.grayscale
    hr = modcrop(image.rgb, 2)
    as_file = y_only_bicubic_scores(hr, 2, greyscale_file=True)["psnr_y8"]
    as_luma = y_only_bicubic_scores(hr, 2, greyscale_file=False)["psnr_y8"]
    assert 1.2 < as_luma - as_file < 1.45  # 20 log10(255 / 219) = 1.32 dB, the luma range compression


def test_legacy_luma_is_8_bit():
    hr = torch.tensor(photo("chelsea", (40, 30))).permute(2, 0, 1).double() / 255
    y = legacy_luma(hr, greyscale_file=False)
    assert y.shape == (1, 30, 40)
    assert torch.equal(y * 255, torch.round(y * 255))
    assert 16 / 255 - 1e-12 <= y.min() and y.max() <= 235 / 255 + 1e-12


def test_gtmod12_pairs_crop_hr_to_a_multiple_of_12(tmp_path):
    from conftest import write_folder
    from srlab.data.resize import bicubic_downscale
    from srlab.metrics.legacy import gtmod12_pairs

    folder = write_folder(tmp_path / "hr", {"cat": ("chelsea", (50, 38))})
    ((name, lr, hr),) = gtmod12_pairs(folder, 3)
    assert name == "cat" and hr.shape == (3, 36, 48) and lr.shape == (3, 12, 16)
    assert torch.equal(lr, bicubic_downscale(hr, 3, quantize=True))
