"""Reading look-up-table files: what is recognised from them, and one-line errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import srlab
from conftest import photo, run_cli
from srlab.errors import SrlabError
from srlab.lut import read_lut_file


def table(path, entries, outputs, seed=0):
    rng = np.random.default_rng(seed)
    np.save(path, rng.integers(-127, 128, (entries, 1, *outputs), dtype=np.int8) if isinstance(outputs, tuple)
            else rng.integers(-127, 128, (entries, outputs), dtype=np.int8))
    return path


@pytest.mark.parametrize(("name", "entries", "field", "levels"), [
    ("Model_S_x4_4bit_int8.npy", 17**4, "S", 17),
    ("Model_F_x4_4bit_int8.npy", 17**3, "F", 17),
    ("Model_V_x4_0bit_int8.npy", 257**2, "V", 257),
    ("Model_D_x4_4bit_int8.npy", 17**4, "D", 17),
    ("mine.npy", 17**3, "F", 17),  # not the official name: the field follows from the entry count
    ("mine2.npy", 17**2, "V", 17),
])
def test_the_field_levels_and_scale_are_read_from_the_file(tmp_path, name, entries, field, levels):
    lut = read_lut_file(table(tmp_path / name, entries, (4, 4)))
    assert (lut.model, lut.scale, lut.args) == ("sr_lut", 4, {"field": field, "levels": levels})
    assert lut.tensors["lut"].shape == (entries, 16) and lut.tensors["lut"].dtype == torch.float32
    model = srlab.create_model(checkpoint=tmp_path / name)
    assert model.field.name == field and model.scale == 4


def test_model_arg_names_the_field_of_a_four_tap_table(tmp_path):
    path = table(tmp_path / "mine.npy", 17**4, 9)
    model = srlab.create_model(checkpoint=path, args={"field": "Y"})
    assert (model.field.name, model.scale) == ("Y", 3)
    with pytest.raises(SrlabError, match=r"does not fit model 'sr_lut' x3: 1 of another shape \(e.g. lut"):
        srlab.create_model(checkpoint=path, args={"field": "F"})


@pytest.mark.parametrize(("content", "message"), [
    (b"not a numpy file at all", "not a NumPy .npy file of numbers, or it is corrupt"),
    (np.array([{"a": 1}], dtype=object), "not a NumPy .npy file of numbers"),  # a pickle inside: never loaded
    (np.zeros((17**4, 16), np.float32), r"holds float32 \(83521, 16\), not an int8 table"),
    (np.zeros((1000, 16), np.int8), "has 1000 entries, not levels\\*\\*4"),
    (np.zeros((17**4, 5), np.int8), "has 5 outputs per entry, not scale\\*\\*2"),
])
def test_a_bad_table_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
    with pytest.raises(SrlabError, match=message) as error:
        srlab.create_model(checkpoint=path)
    assert "\n" not in str(error.value)


def test_a_renamed_table_is_refused(tmp_path):
    path = table(tmp_path / "Model_S_x2_4bit_int8.npy", 17**4, 16)
    with pytest.raises(SrlabError, match="is named x2 but holds x4 outputs"):
        read_lut_file(path)


def mulut_folder(folder, skip=(), prefix="LUT_ft"):
    folder.mkdir(exist_ok=True)
    for stage, outputs in ((1, 1), (2, 16)):
        for mode in "sdy":
            if f"s{stage}_{mode}" not in skip:
                table(folder / f"{prefix}_x4_4bit_int8_s{stage}_{mode}.npy", 17**4, outputs)
    return folder


def test_a_mulut_folder_is_read_as_its_cascade(tmp_path):
    lut = read_lut_file(mulut_folder(tmp_path / "sr_x2sdy"))
    assert (lut.model, lut.scale, lut.args) == ("mulut", 4, {"modes": "sdy", "stages": 2, "levels": 17})
    assert sorted(lut.tensors) == [f"luts.s{s}_{m}" for s in (1, 2) for m in "dsy"]


def test_bad_mulut_folders_are_one_line_errors(tmp_path):
    with pytest.raises(SrlabError, match="lacks MuLUT tables s2_d"):
        read_lut_file(mulut_folder(tmp_path / "a", skip={"s2_d"}))
    mulut_folder(tmp_path / "b")
    mulut_folder(tmp_path / "b", prefix="LUT")
    with pytest.raises(SrlabError, match="holds several MuLUT table sets"):
        srlab.create_model(checkpoint=tmp_path / "b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrlabError, match="is a folder: give the weights file in it"):
        srlab.create_model(checkpoint=tmp_path / "empty")


def test_upscale_with_an_official_table_names_outputs_like_every_model(tmp_path, capsys):
    lr = tmp_path / "LR"
    lr.mkdir()
    Image.fromarray(photo("astronaut", (24, 20))).save(lr / "astro.png")
    Image.fromarray(photo("coffee", (20, 16))).save(lr / "coffee.png")
    (lr / "broken.png").write_bytes(b"not a png")
    path = table(tmp_path / "Model_S_x4_4bit_int8.npy", 17**4, (4, 4))
    code, _, err = run_cli(capsys, "upscale", "--model", "sr_lut", "--checkpoint", path, "--scale", "4", lr,
                           "-o", tmp_path / "OUT")
    assert code != 0 and "broken.png" in err  # the bad file is reported, the others are written
    assert Image.open(tmp_path / "OUT" / "astro_x4.png").size == (96, 80)
    assert Image.open(tmp_path / "OUT" / "coffee_x4.png").size == (80, 64)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"junk")
    code, _, err = run_cli(capsys, "upscale", "--model", "sr_lut", "--checkpoint", bad, lr, "-o", tmp_path / "O2")
    assert code != 0 and err.startswith("srlab: error: cannot read look-up table") and err.count("\n") == 1
