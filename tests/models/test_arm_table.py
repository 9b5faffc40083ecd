"""Building ARM lookup tables (srlab.models.arm_table, ``srlab arm-table``) and the tables srlab checkpoints carry."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from scipy import stats

import srlab
from srlab.data.datasets import discover_pairs, load_pair
from srlab.adaptive.method import build_adaptive
from srlab.errors import SrlabError
from srlab.models.arm_lookup import TABLE_METADATA_KEY, find_arm_table, load_arm_table, table_path_for
from srlab.models.arm_table import (
    PatchScores,
    build_arm_table,
    patch_psnr,
    sub_image_starts,
    table_document,
    validation_patches,
    write_table_json,
)
from srlab.models.weights import save_weights
from conftest import BENCHMARKS, OFFICIAL_WEIGHTS, needs_shared, run_cli

FSRCNN_PTH = OFFICIAL_WEIGHTS / "arm" / "arm-fsrcnn.pth"
SET5 = BENCHMARKS / "Set5"
needs_fsrcnn_and_set5 = needs_shared(FSRCNN_PTH, SET5)


def test_sub_images_follow_the_official_crop():
    # DIV2K's 2040-pixel side at x4: 510 LR px; stride 28 leaves 2 px (<= 12): no extra patch.
    assert sub_image_starts(510) == list(range(0, 477, 28))
    assert sub_image_starts(100) == [0, 28, 56]  # 12 px left over: not more than the threshold
    assert sub_image_starts(101) == [0, 28, 56, 69]  # 13 px: one more patch flush with the border
    assert sub_image_starts(31) == []
    lr, hr = torch.rand(3, 45, 75), torch.rand(3, 180, 300)
    lr_p, hr_p = validation_patches(lr, hr, 4)  # rows 0, 13; columns 0, 28, 43
    assert lr_p.shape == (2 * 3, 3, 32, 32) and hr_p.shape == (6, 3, 128, 128)
    assert torch.equal(lr_p[-1], lr[:, 13:45, 43:75]) and torch.equal(hr_p[-1], hr[:, 52:180, 172:300])


def test_patch_psnr_is_the_official_8_bit_rgb_psnr():
    hr = torch.full((1, 3, 12, 12), 100 / 255)
    sr = hr.clone()
    sr[..., 4:8, 4:8] += 3 / 255  # 16 of the 4x4 inner pixels (border 4), in all channels, off by 3 levels
    expected = 20 * np.log10(255 / np.sqrt(9.0))
    assert patch_psnr(sr, hr, border=4) == pytest.approx([expected], abs=1e-9)
    assert patch_psnr(hr, hr, border=4).tolist() == [80.0]
    # Values out of [0, 1] are clamped and quantised as tensor2img does.
    assert patch_psnr(hr + 0.4 / 255, hr, border=0).tolist() == [80.0]


def test_binning_is_hist2d_and_binned_statistic():
    rng = np.random.default_rng(0)
    scores = rng.uniform(2, 200, 5000)
    psnr = np.stack([40 - 0.05 * scores + rng.normal(0, 1, 5000) + j for j in range(3)])
    doc = table_document(PatchScores(scores, psnr), [0.0, 1.0, 2.0], bins=30)
    for j in range(3):
        hist, x_edges, y_edges = np.histogram2d(scores, psnr[j], bins=30)
        means = stats.binned_statistic(scores, psnr[j], "mean", bins=x_edges).statistic
        assert np.array_equal(doc["hmap_list"][j], hist)
        assert np.allclose(doc["hmap_x_list"][j], x_edges[:-1] + (x_edges[1] - x_edges[0]) / 2, rtol=0, atol=1e-12)
        assert np.allclose(doc["hmap_y_list"][j], y_edges[:-1] + (y_edges[1] - y_edges[0]) / 2, rtol=0, atol=1e-12)
        assert np.allclose(doc["hmap_y_mean_list"][j], means, rtol=0, atol=1e-9)
    assert doc["eta"] == "best" and doc["bins"] == 30 and doc["cost_list"] == [0.0, 1.0, 2.0]


def test_an_empty_bin_takes_the_mean_of_its_neighbours():
    scores = np.array([0.0, 1.0, 4.0, 5.0])  # 5 bins of width 1: bins 2 and 3 are empty
    psnr = np.array([[30.0, 28.0, 22.0, 20.0]])
    doc = table_document(PatchScores(scores, psnr), [0.0], bins=5)
    # Bin means 30, 28, -, -, 21 at centres 0.5 .. 4.5: the empty ones interpolate 28 -> 21.
    assert doc["hmap_y_mean_list"][0] == pytest.approx([30.0, 28.0, 28 - 7 / 3, 28 - 14 / 3, 21.0])


def test_a_table_needs_a_supernet_and_patches():
    with pytest.raises(SrlabError, match="an ARM table needs a slimmable supernet .* not 'fsrcnn'"):
        build_arm_table(srlab.create_model("fsrcnn", scale=4), [])
    model = srlab.create_model("arm_fsrcnn", scale=4)
    with pytest.raises(SrlabError, match="no validation patch"):
        build_arm_table(model, [("tiny", lambda: (torch.rand(3, 20, 20), torch.rand(3, 80, 80)))])


@needs_fsrcnn_and_set5
def test_a_table_of_the_released_fsrcnn_has_the_released_tables_form(tmp_path):
    model = srlab.create_model("arm_fsrcnn", scale=4, checkpoint=FSRCNN_PTH)
    pairs = [(p.name, lambda p=p: load_pair(p, 4)) for p in discover_pairs(SET5, 4).pairs]
    build = build_arm_table(model, pairs)
    doc, released = build.document, json.loads(table_path_for(FSRCNN_PTH).read_text())
    assert build.images == 5 and sum(map(sum, doc["hmap_list"][0])) == build.patches > 20
    assert set(released) == set(doc)
    for key in ("hmap_x_list", "hmap_y_list", "hmap_y_mean_list"):
        assert np.shape(doc[key]) == np.shape(released[key]) == (4, 30)
    assert np.shape(doc["hmap_list"]) == (4, 30, 30)
    # The cost of each subnet is the released one (srlab's MACs; the official counter adds 1 per PReLU).
    assert np.abs(np.array(doc["cost_list"]) - released["cost_list"]).max() <= 4
    assert doc["cost_list"][0] == 0 and np.all(np.diff(doc["cost_list"]) > 0)
    # Every subnet sees the same patches: one set of bin centres, as in the released table.
    assert all(row == doc["hmap_x_list"][0] for row in doc["hmap_x_list"])
    # Wider is better on average, and every network beats bicubic.
    mean_psnr = [np.average(doc["hmap_y_mean_list"][j], weights=np.sum(doc["hmap_list"][j], axis=1)) for j in range(4)]
    assert mean_psnr[0] < mean_psnr[1] < mean_psnr[2] < mean_psnr[3]
    table_path = tmp_path / "t.hmap.json"
    write_table_json(table_path, doc)
    assert load_arm_table(table_path, subnets=4).hmap_y_mean.shape == (4, 30)


def test_the_cli_writes_a_table_and_a_checkpoint_that_carries_it(tiny_photos, tmp_path, capsys):
    torch.manual_seed(0)
    trained = tmp_path / "best.safetensors"
    save_weights(trained, srlab.create_model("arm_fsrcnn", scale=4), metadata={"srlab.epoch": "7"})
    with pytest.raises(SrlabError, match=r"no ARM lookup table for .*best\.safetensors.*build one with srlab arm-table "
                                         r"--model arm_fsrcnn --checkpoint .*best\.safetensors --data VAL_DIR --out "
                                         r".*best\.arm\.safetensors"):
        find_arm_table(trained, subnets=4, model="arm_fsrcnn")
    data = tiny_photos["train"]  # 96x72 HR -> 24x18 LR: too small for 32-pixel patches; use 16
    json_out, carried = tmp_path / "best.hmap.json", tmp_path / "best.arm.safetensors"
    code, out, err = run_cli(capsys, "arm-table", "--checkpoint", trained, "--data", data, "--out", json_out,
                             "--patch", 16, "--step", 14, "--bins", 4, "--device", "cpu")
    assert code == 0 and err == "" and f"wrote {json_out}" in out
    assert load_arm_table(json_out, subnets=4).hmap_x.shape == (4, 4)
    code, out, err = run_cli(capsys, "arm-table", "--checkpoint", trained, "--data", data, "--out", carried,
                             "--patch", 16, "--step", 14, "--bins", 4, "--device", "cpu")
    assert code == 0, err
    with safe_open(str(carried), framework="pt") as f:
        meta = f.metadata()
    assert meta["srlab.epoch"] == "7" and meta["srlab.model"] == "arm_fsrcnn"
    assert json.loads(meta[TABLE_METADATA_KEY]) == json.loads(json_out.read_text())
    # The carried table wins over a .hmap.json beside the weights; the weights are the same.
    (tmp_path / "best.arm.hmap.json").write_text("not json")
    table = find_arm_table(carried, subnets=4, model="arm_fsrcnn")
    assert np.array_equal(table.hmap_y_mean, load_arm_table(json_out).hmap_y_mean)
    a, b = srlab.create_model(checkpoint=trained), srlab.create_model(checkpoint=carried)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    method = build_adaptive("arm", srlab.create_model(checkpoint=carried), checkpoint=carried, knob=1.0)
    assert method.num_routes == 4 and np.array_equal(method.table.cost, table.cost)


def test_cli_refusals_are_one_line(tiny_photos, tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_weights(weights, srlab.create_model("arm_fsrcnn", scale=4))
    data = tiny_photos["train"]
    code, _, err = run_cli(capsys, "arm-table", "--checkpoint", weights, "--data", data, "--out", tmp_path / "t.json")
    assert code == 2 and err.strip() == (
        f"srlab: error: --out '{tmp_path / 't.json'}' must end in .hmap.json (the table) or .safetensors (weights carrying it)"
    )
    code, _, err = run_cli(capsys, "arm-table", "--checkpoint", weights, "--data", data, "--out", weights)
    assert code == 2 and "refusing to overwrite input file" in err and err.count("\n") == 1
    plain = tmp_path / "plain.safetensors"
    save_weights(plain, srlab.create_model("fsrcnn", scale=4))
    code, _, err = run_cli(capsys, "arm-table", "--checkpoint", plain, "--data", data, "--out", tmp_path / "p.hmap.json")
    assert code == 2 and "an ARM table needs a slimmable supernet" in err and err.count("\n") == 1
    carried = tmp_path / "bad.safetensors"
    save_weights(carried, srlab.create_model("arm_fsrcnn", scale=4), metadata={TABLE_METADATA_KEY: "{"})
    with pytest.raises(SrlabError, match="srlab.arm_table metadata is not JSON .* rebuild it with srlab arm-table"):
        find_arm_table(carried, subnets=4, model="arm_fsrcnn")
