"""SR-LUT-S x4's scores on Set5 / Set14 under srlab's protocol and under the official test's own.

Published (Jo & Kim 2021, SR-LUT-S x4): Set5 29.82, Set14 27.01 (B100 26.53, Urban100 24.02).

* srlab's protocol (``srlab eval``): HR modcropped to a multiple of 4, the SR output rounded to 8 bits,
  float Y of MATLAB ``rgb2ycbcr``, 4 pixels shaved, PSNR in float64.
* The official ``Test_Model_S.py``: HR as stored (not modcropped): the SR output is cropped to the HR size
  or zero-padded up to it, Y from its ``_rgb2ycbcr`` (the same BT.601 matrix, float), 4 pixels shaved,
  PSNR in float32. The zero-padded rows and columns (3 Set14 images have a side that is not a multiple
  of 4, by 2 pixels) fall inside the 4 shaved ones, so the two protocols differ only by float rounding
  and the Y of the uncropped HR border.

Measured with the released table: Set5 29.833 under both (published 29.82); Set14 27.110 (srlab) /
27.112 (official) against the published 27.01. The Set14 gap is not the protocol's; the paper's Set14
LR images were presumably made differently from these MATLAB-bicubic ones (not verified).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared
from srlab.data.datasets import discover_pairs
from srlab.inference.evaluate import evaluate_folder
from srlab.models.mulut_net import to_mulut

TABLE = OFFICIAL_WEIGHTS / "sr-lut" / "Model_S_x4_4bit_int8.npy"
MULUT = OFFICIAL_WEIGHTS / "mulut"
MULUT_NETWORK = MULUT / "Model_200000.safetensors"
# (srlab's protocol, the official protocol) as measured with the released table; published beside them.
MEASURED = {"Set5": (29.8327, 29.8327), "Set14": (27.1097, 27.1123)}
PUBLISHED = {"Set5": 29.82, "Set14": 27.01}

_T = np.array([[0.256788235294118, 0.504129411764706, 0.097905882352941]])


def official_psnr_y(gt: np.ndarray, out: np.ndarray, shave: int = 4) -> float:
    """SR-LUT's size matching, ``_rgb2ycbcr`` Y and float32 ``PSNR`` (1_Train_deep_model/utils.py)."""
    out = out[: gt.shape[0], : gt.shape[1]]
    out = np.pad(out, ((0, gt.shape[0] - out.shape[0]), (0, gt.shape[1] - out.shape[1]), (0, 0)))
    y_gt, y_out = (np.dot(x.reshape(-1, 3), _T.T)[:, 0].reshape(x.shape[:2]) + 16 for x in (gt, out))
    diff = (y_out.astype(np.float32) - y_gt.astype(np.float32))[shave:-shave, shave:-shave]
    return float(20 * np.log10(255.0 / np.sqrt(np.mean(np.power(diff, 2)))))


def official_protocol_mean(model, dataset: str) -> float:
    folder = discover_pairs(BENCHMARKS / dataset, 4)
    scores = []
    for pair in folder.pairs:
        lr = torch.from_numpy(np.array(Image.open(pair.lr).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            sr = model(lr)
        out = (sr[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        scores.append(official_psnr_y(np.array(Image.open(pair.hr).convert("RGB")), out))
    return float(np.mean(scores))


def _scores(dataset: str) -> tuple[float, float]:
    model = srlab.create_model(checkpoint=TABLE)
    ours = evaluate_folder(model, discover_pairs(BENCHMARKS / dataset, 4)).psnr_y
    return ours, official_protocol_mean(model, dataset)


@needs_shared(TABLE, BENCHMARKS / "Set5")
def test_sr_lut_s_x4_on_set5_under_both_protocols():
    ours, official = _scores("Set5")
    assert ours == pytest.approx(MEASURED["Set5"][0], abs=1e-4)
    assert official == pytest.approx(MEASURED["Set5"][1], abs=1e-4)
    assert abs(official - PUBLISHED["Set5"]) < 0.015


@needs_shared(TABLE, BENCHMARKS / "Set14")
def test_sr_lut_s_x4_on_set14_under_both_protocols():
    ours, official = _scores("Set14")
    assert ours == pytest.approx(MEASURED["Set14"][0], abs=1e-4)
    assert official == pytest.approx(MEASURED["Set14"][1], abs=1e-4)
    assert 0.09 < official - PUBLISHED["Set14"] < 0.11  # the gap stated above


@needs_shared(MULUT, BENCHMARKS / "Set5")
def test_mulut_x4_on_set5():
    # sr/4_test_lut.py's reference result: "Dataset Set5 | AVG LUT PSNR: 30.61 SSIM: 0.8655" (its SSIM is
    # its own cal_ssim; srlab's Wang SSIM gives 0.8663).
    model = srlab.create_model(checkpoint=MULUT)
    result = evaluate_folder(model, discover_pairs(BENCHMARKS / "Set5", 4))
    assert result.psnr_y == pytest.approx(30.6111, abs=1e-4)
    assert round(result.psnr_y, 2) == 30.61


@needs_shared(MULUT, BENCHMARKS / "Set14")
def test_mulut_x4_on_set14():
    # sr/4_test_lut.py's reference result: "Dataset Set14 | AVG LUT PSNR: 27.60 SSIM: 0.7544".
    model = srlab.create_model(checkpoint=MULUT)
    result = evaluate_folder(model, discover_pairs(BENCHMARKS / "Set14", 4))
    assert result.psnr_y == pytest.approx(27.6105, abs=1e-4)


@pytest.mark.slow
@needs_shared(MULUT_NETWORK, BENCHMARKS / "Set5")
def test_the_mulut_network_and_its_transferred_tables_on_set5():
    # The network's own training log (models/sr_x2sdy/train.log, iteration 200000, its protocol): Set5
    # 30.6079. Its tables before fine-tuning lose 0.08 dB; the released fine-tuned ones score 30.6111.
    net = srlab.create_model(checkpoint=MULUT_NETWORK)
    pairs = discover_pairs(BENCHMARKS / "Set5", 4)
    assert evaluate_folder(net, pairs).psnr_y == pytest.approx(30.6089, abs=1e-4)
    assert evaluate_folder(to_mulut(net), pairs).psnr_y == pytest.approx(30.5281, abs=1e-4)
