"""The LUT models compute exactly what the official test code computes on the released tables.

The reference here transcribes the official test-time logic independently of srlab.lut: the nested
branch tables of yhjo09/SR-LUT ``3_Test_using_LUT/Test_Model_{S,F,V}.py`` (MuLUT's ``sr/4_test_lut.py``
is the same 4-simplex table with its one mis-ordered branch corrected), evaluated with numpy masks instead
of the per-pixel loop, the official padding, rotations, float32/float64 arithmetic and rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import srlab
from conftest import OFFICIAL_WEIGHTS, needs_shared

SRLUT = OFFICIAL_WEIGHTS / "sr-lut"
MULUT = OFFICIAL_WEIGHTS / "mulut"


def _where(cond, a, b):
    return np.where(cond[:, None], a, b)


def four_simplex(f, p, q, mulut_fix):
    """Test_Model_S.py's nested branches: ``f`` = (fa, fb, fc, fd) (N,), ``p[bits]`` = vertex rows (N, R)."""
    fa, fb, fc, fd = (x[:, None] for x in f)

    def t(w0, v1, w1, v2, w2, v3, w3, v4, w4):
        return w0 * p["0000"] + w1 * p[v1] + w2 * p[v2] + w3 * p[v3] + w4 * p[v4]

    a, b, c, d = (x.ravel() for x in (fa, fb, fc, fd))
    # c >= a > b, d >= b, c > d: SR-LUT takes (c, a, d, b) whatever a and d; MuLUT asks a > d first.
    cad = t(q - fc, "0010", fc - fa, "1010", fa - fd, "1011", fd - fb, "1111", fb)
    cda = t(q - fc, "0010", fc - fd, "0011", fd - fa, "1011", fa - fb, "1111", fb)
    c_d_branch = _where(a > d, cad, cda) if mulut_fix else cad
    a_gt_b = _where(
        b > c,
        _where(c > d, t(q - fa, "1000", fa - fb, "1100", fb - fc, "1110", fc - fd, "1111", fd),
        _where(b > d, t(q - fa, "1000", fa - fb, "1100", fb - fd, "1101", fd - fc, "1111", fc),
        _where(a > d, t(q - fa, "1000", fa - fd, "1001", fd - fb, "1101", fb - fc, "1111", fc),
               t(q - fd, "0001", fd - fa, "1001", fa - fb, "1101", fb - fc, "1111", fc)))),
        _where(a > c,
        _where(b > d, t(q - fa, "1000", fa - fc, "1010", fc - fb, "1110", fb - fd, "1111", fd),
        _where(c > d, t(q - fa, "1000", fa - fc, "1010", fc - fd, "1011", fd - fb, "1111", fb),
        _where(a > d, t(q - fa, "1000", fa - fd, "1001", fd - fc, "1011", fc - fb, "1111", fb),
               t(q - fd, "0001", fd - fa, "1001", fa - fc, "1011", fc - fb, "1111", fb)))),
        _where(b > d, t(q - fc, "0010", fc - fa, "1010", fa - fb, "1110", fb - fd, "1111", fd),
        _where(c > d, c_d_branch,
        _where(a > d, t(q - fc, "0010", fc - fd, "0011", fd - fa, "1011", fa - fb, "1111", fb),
               t(q - fd, "0001", fd - fc, "0011", fc - fa, "1011", fa - fb, "1111", fb))))),
    )
    a_le_b = _where(
        a > c,
        _where(c > d, t(q - fb, "0100", fb - fa, "1100", fa - fc, "1110", fc - fd, "1111", fd),
        _where(a > d, t(q - fb, "0100", fb - fa, "1100", fa - fd, "1101", fd - fc, "1111", fc),
        _where(b > d, t(q - fb, "0100", fb - fd, "0101", fd - fa, "1101", fa - fc, "1111", fc),
               t(q - fd, "0001", fd - fb, "0101", fb - fa, "1101", fa - fc, "1111", fc)))),
        _where(b > c,
        _where(a > d, t(q - fb, "0100", fb - fc, "0110", fc - fa, "1110", fa - fd, "1111", fd),
        _where(c > d, t(q - fb, "0100", fb - fc, "0110", fc - fd, "0111", fd - fa, "1111", fa),
        _where(b > d, t(q - fb, "0100", fb - fd, "0101", fd - fc, "0111", fc - fa, "1111", fa),
               t(q - fd, "0001", fd - fb, "0101", fb - fc, "0111", fc - fa, "1111", fa)))),
        _where(a > d, t(q - fc, "0010", fc - fb, "0110", fb - fa, "1110", fa - fd, "1111", fd),
        _where(b > d, t(q - fc, "0010", fc - fb, "0110", fb - fd, "0111", fd - fa, "1111", fa),
        _where(c > d, t(q - fc, "0010", fc - fd, "0011", fd - fb, "0111", fb - fa, "1111", fa),
               t(q - fd, "0001", fd - fc, "0011", fc - fb, "0111", fb - fa, "1111", fa))))),
    )
    return _where(a > b, a_gt_b, a_le_b)


def tetrahedral(f, p, q):
    """Test_Model_F.py's branches."""
    fx, fy, fz = (x[:, None] for x in f)
    x, y, z = f
    return _where(
        x > y,
        _where(y > z, (q - fx) * p["000"] + (fx - fy) * p["100"] + (fy - fz) * p["110"] + fz * p["111"],
        _where(x > z, (q - fx) * p["000"] + (fx - fz) * p["100"] + (fz - fy) * p["101"] + fy * p["111"],
               (q - fz) * p["000"] + (fz - fx) * p["001"] + (fx - fy) * p["101"] + fy * p["111"])),
        _where(z > y, (q - fz) * p["000"] + (fz - fy) * p["001"] + (fy - fx) * p["011"] + fx * p["111"],
        _where(z > x, (q - fy) * p["000"] + (fy - fz) * p["010"] + (fz - fx) * p["011"] + fx * p["111"],
               (q - fy) * p["000"] + (fy - fx) * p["010"] + (fx - fz) * p["110"] + fz * p["111"])),
    )


def triangular(f, p, q):
    """Test_Model_V.py's branches."""
    fx, fy = (x[:, None] for x in f)
    return _where(f[0] > f[1], (q - fx) * p["00"] + (fx - fy) * p["10"] + fy * p["11"],
                  (q - fy) * p["00"] + (fy - fx) * p["01"] + fx * p["11"])


TAPS = {
    "S": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "D": ((0, 0), (0, 2), (2, 0), (2, 2)),
    "Y": ((0, 0), (1, 1), (1, 2), (2, 1)),
    "F": ((0, 0), (0, 1), (0, 2)),
    "V": ((0, 0), (0, 1)),
}


def interp(weight, img_in, h, w, interval, upscale, field, mulut_fix):
    """q times the official interpolation of float32 ``img_in`` (C, H+pad, W+pad) -> (C, h*s, w*s) float64."""
    q, levels = 2**interval, 2 ** (8 - interval) + 1
    taps = [img_in[:, dy : dy + h, dx : dx + w] for dy, dx in TAPS[field]]
    msb = [(t // q).ravel().astype(np.int_) for t in taps]
    lsb = [(t % q).ravel() for t in taps]  # float32, as the official code's `% q`
    vertices = {}
    for bits in np.ndindex(*[2] * len(taps)):
        index = np.zeros_like(msb[0])
        for m, bit in zip(msb, bits):
            index = index * levels + m + bit
        vertices["".join(map(str, bits))] = weight[index]
    k = len(taps)
    out = (four_simplex(lsb, vertices, q, mulut_fix) if k == 4 else tetrahedral(lsb, vertices, q) if k == 3
           else triangular(lsb, vertices, q)).astype(np.float64)
    c = img_in.shape[0]
    out = out.reshape(c, h, w, upscale, upscale).transpose(0, 1, 3, 2, 4).reshape(c, h * upscale, w * upscale)
    return out


def srlut_reference(img_lr, lut_file, upscale, field, interval):
    """Test_Model_{S,F,V}.py on one uint8 (H, W, 3) image."""
    weight = np.load(lut_file).astype(np.float32).reshape(-1, upscale * upscale)
    q = 2**interval
    pad = {"S": ((0, 1), (0, 1)), "F": ((0, 0), (0, 2)), "V": ((0, 0), (0, 1))}[field]
    img = img_lr.astype(np.float32)
    outs = []
    for r, back in ((0, 0), (1, 3), (2, 2), (3, 1)):
        rot = np.rot90(img, r)
        h, w = rot.shape[:2]
        img_in = np.pad(rot, (*pad, (0, 0)), mode="reflect").transpose((2, 0, 1))
        out = interp(weight, img_in, h, w, interval, upscale, field, mulut_fix=False)
        outs.append(np.rot90(out, back, [1, 2]) / q)
    img_out = (outs[0] / 1.0 + outs[1] / 1.0 + outs[2] / 1.0 + outs[3] / 1.0) / 255.0
    return np.round(np.clip(img_out.transpose((1, 2, 0)), 0, 1) * 255).astype(np.uint8)


def mulut_reference(img_lr, folder, upscale=4, modes="sdy", stages=2, interval=4):
    """sr/4_test_lut.py on one uint8 (H, W, 3) image."""
    luts = {
        f"s{s}_{m}": np.load(folder / f"LUT_ft_x{upscale}_4bit_int8_s{s}_{m}.npy").astype(np.float32).reshape(
            -1, upscale * upscale if s == stages else 1)
        for s in range(1, stages + 1) for m in modes
    }
    img = img_lr.astype(np.float32)
    for s in range(stages):
        pred = 0
        last = s + 1 == stages
        scale, avg, bias = (upscale, len(modes), 0) if last else (1, len(modes) * 4, 127)
        for mode in modes:
            pad = (0, 2) if mode in "dy" else (0, 1)
            for r in range(4):
                rot = np.rot90(img, r)
                h, w = rot.shape[:2]
                img_in = np.pad(rot, (pad, pad, (0, 0)), mode="edge").transpose((2, 0, 1))
                out = interp(luts[f"s{s + 1}_{mode}"], img_in, h, w, interval, scale, mode.upper(), mulut_fix=True)
                pred += np.rot90(out, 4 - r, [1, 2]) / 2**interval
        img = np.clip(pred / avg + bias, 0, 255).transpose((1, 2, 0))
        img = np.round(np.clip(img, 0, 255))
        img = img.astype(np.uint8) if last else img.astype(np.float32)
    return img


def run_model(model, img):
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = model(x)
    return (y[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def random_image(seed, h=13, w=11):
    rng = np.random.default_rng(seed)
    # smooth areas too: equal low bits and equal neighbours are where branch choices differ
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[: h // 2, : w // 2] = rng.integers(100, 104, (h // 2, w // 2, 3), dtype=np.uint8)
    img[-2:, -2:] = 255
    img[:2, -2:] = 0
    return img


SRLUT_TABLES = [
    ("Model_S_x2_4bit_int8.npy", 2, "S", 4),
    ("Model_S_x3_4bit_int8.npy", 3, "S", 4),
    ("Model_S_x4_4bit_int8.npy", 4, "S", 4),
    ("Model_F_x4_4bit_int8.npy", 4, "F", 4),
    ("Model_V_x4_0bit_int8.npy", 4, "V", 0),
]


@needs_shared(SRLUT)
@pytest.mark.parametrize(("name", "scale", "field", "interval"), SRLUT_TABLES)
def test_sr_lut_equals_the_official_test_code_bit_for_bit(name, scale, field, interval):
    model = srlab.create_model(checkpoint=SRLUT / name)
    assert (model.scale, model.field.name, model.interval) == (scale, field, interval)
    for seed in range(3):
        img = random_image(seed)
        expected = srlut_reference(img, SRLUT / name, scale, field, interval)
        assert np.array_equal(run_model(model, img), expected), seed


@needs_shared(SRLUT)
def test_the_srlut_branch_order_matters_where_it_is_wrong():
    # Random images hold windows whose low bits are ordered c > d > a > b, the one ordering SR-LUT's code
    # interpolates on the wrong simplex: the correctly ordered interpolation changes some outputs.
    path = SRLUT / "Model_S_x4_4bit_int8.npy"
    official = srlab.create_model(checkpoint=path)
    sorted_order = srlab.create_model(checkpoint=path, args={"srlut_order": False})
    img = random_image(0, 24, 24)
    expected = srlut_reference(img, path, 4, "S", 4)
    assert np.array_equal(run_model(official, img), expected)
    assert not np.array_equal(run_model(sorted_order, img), expected)


@needs_shared(MULUT)
def test_mulut_equals_the_official_test_code_bit_for_bit():
    model = srlab.create_model(checkpoint=MULUT)
    assert (model.scale, model.modes, model.stages) == (4, "sdy", 2)
    for seed in range(2):
        img = random_image(seed, 12, 10)
        assert np.array_equal(run_model(model, img), mulut_reference(img, MULUT)), seed
