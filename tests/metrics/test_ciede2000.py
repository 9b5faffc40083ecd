"""CIEDE2000 against the published test pairs (Sharma, Wu & Dalal 2005, Table 1) and scikit-image's
``deltaE_ciede2000`` (an independent implementation), and as a registered metric of `srlab eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import distort, photo, photo_tensor, run_cli
from srlab.metrics.ciede2000 import ciede2000, mean_ciede2000
from srlab.metrics.protocol import PAPER_PROTOCOL
from srlab.metrics.registry import MetricSet, get_metric

skcolor = pytest.importorskip("skimage.color")

# (L1, a1, b1), (L2, a2, b2), Delta E 00 to 4 decimals: the 34 pairs of Sharma et al.'s Table 1.
SHARMA_PAIRS = [
    ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
    ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
    ((50, 2.8361, -74.0200), (50, 0, -82.7485), 3.4412),
    ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0000),
    ((50, -1.1848, -84.8006), (50, 0, -82.7485), 1.0000),
    ((50, -0.9009, -85.5211), (50, 0, -82.7485), 1.0000),
    ((50, 0, 0), (50, -1, 2), 2.3669),
    ((50, -1, 2), (50, 0, 0), 2.3669),
    ((50, 2.4900, -0.0010), (50, -2.4900, 0.0009), 7.1792),
    ((50, 2.4900, -0.0010), (50, -2.4900, 0.0010), 7.1792),
    ((50, 2.4900, -0.0010), (50, -2.4900, 0.0011), 7.2195),
    ((50, 2.4900, -0.0010), (50, -2.4900, 0.0012), 7.2195),
    ((50, -0.0010, 2.4900), (50, 0.0009, -2.4900), 4.8045),
    ((50, -0.0010, 2.4900), (50, 0.0010, -2.4900), 4.8045),
    ((50, -0.0010, 2.4900), (50, 0.0011, -2.4900), 4.7461),
    ((50, 2.5, 0), (50, 0, -2.5), 4.3065),
    ((50, 2.5, 0), (73, 25, -18), 27.1492),
    ((50, 2.5, 0), (61, -5, 29), 22.8977),
    ((50, 2.5, 0), (56, -27, -3), 31.9030),
    ((50, 2.5, 0), (58, 24, 15), 19.4535),
    ((50, 2.5, 0), (50, 3.1736, 0.5854), 1.0000),
    ((50, 2.5, 0), (50, 3.2972, 0), 1.0000),
    ((50, 2.5, 0), (50, 1.8634, 0.5757), 1.0000),
    ((50, 2.5, 0), (50, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def _lab_columns(colours) -> torch.Tensor:
    """[(L, a, b), ...] -> (3, N, 1)."""
    return torch.tensor(colours, dtype=torch.float64).T.unsqueeze(-1)


def test_the_published_test_pairs():
    lab1 = _lab_columns([p[0] for p in SHARMA_PAIRS])
    lab2 = _lab_columns([p[1] for p in SHARMA_PAIRS])
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    np.testing.assert_allclose(ciede2000(lab1, lab2)[:, 0].numpy(), expected, rtol=0, atol=5e-5)
    # symmetric, as the formula is (the mean hue and chroma do not depend on the order)
    np.testing.assert_allclose(ciede2000(lab2, lab1)[:, 0].numpy(), expected, rtol=0, atol=5e-5)


def test_agrees_with_scikit_image_on_random_lab_colours():
    g = torch.Generator().manual_seed(0)
    lab1 = torch.stack([torch.rand(400, generator=g, dtype=torch.float64) * 100,
                        *(torch.randn(2, 400, generator=g, dtype=torch.float64) * 40)]).unsqueeze(-1)
    lab2 = lab1 + torch.randn(lab1.shape, generator=g, dtype=torch.float64) * 5
    expected = skcolor.deltaE_ciede2000(lab1[..., 0].T.numpy(), lab2[..., 0].T.numpy())
    np.testing.assert_allclose(ciede2000(lab1, lab2)[:, 0].numpy(), expected, rtol=0, atol=1e-10)


def test_the_image_mean_agrees_with_scikit_image_on_a_photo():
    hr = photo("astronaut", (64, 48))
    sr = distort(hr, "jpeg", 25)
    expected = skcolor.deltaE_ciede2000(skcolor.rgb2lab(hr), skcolor.rgb2lab(sr)).mean()
    # the Lab constants differ by up to 2e-4 (srlab.metrics.lab); their effect on the mean is far smaller
    value = mean_ciede2000(photo_tensor(sr), photo_tensor(hr))
    assert value.item() == pytest.approx(expected, abs=1e-5)
    assert mean_ciede2000(photo_tensor(hr), photo_tensor(hr)).item() == 0.0


def test_batches_and_grey_images():
    rgb = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    other = (rgb + 0.05 * torch.randn_like(rgb)).clamp(0, 1)
    batch = mean_ciede2000(rgb, other)
    assert batch.shape == (2,)
    assert batch[1].item() == pytest.approx(mean_ciede2000(rgb[1], other[1]).item(), abs=1e-12)
    grey = rgb[:, :1]
    assert torch.equal(mean_ciede2000(grey, other[:, :1]), mean_ciede2000(grey.expand(-1, 3, -1, -1),
                                                                       other[:, :1].expand(-1, 3, -1, -1)))


def test_it_is_a_registered_metric_lower_is_better():
    metric = get_metric("ciede2000")
    assert not metric.higher_is_better and metric.best == 0.0
    hr = photo_tensor(photo("astronaut", (32, 32)))
    sr = (hr + 0.02).clamp(0, 1)
    scores = MetricSet(["psnr", "ciede2000"]).score(sr, hr, PAPER_PROTOCOL)
    assert scores["ciede2000"] == pytest.approx(mean_ciede2000(sr, hr).item(), abs=1e-12)


def test_srlab_eval_reports_it(capsys, tiny_photos, tmp_path):
    out = tmp_path / "scores.json"
    code, _, err = run_cli(capsys, "eval", "--model", "bicubic", "--scale", "2", "--data", tiny_photos["val"],
                           "--metrics", "psnr,ciede2000", "--json", out, "--quiet")
    assert code == 0, err
    (result,) = json.loads(out.read_text())["results"]
    assert result["ciede2000"] > 0
