"""``arm_learned``: an ARM supernet routed by a learned router at one rate; ``srlab arm-router`` trains it."""

import json
import re
import shutil

import pytest
import torch

import srlab
from conftest import run_cli, write_folder
from srlab.adaptive import build_adaptive
from srlab.adaptive.arm_learned import (
    ArmLearnedRouting, calibrate_arm_router, load_arm_router, router_file, save_arm_router,
)
from srlab.adaptive.costs import route_macs
from srlab.adaptive.rdsr import DB_PER_RELATIVE_ERROR
from srlab.data.datasets import discover_pairs, load_pair
from srlab.errors import SrlabError
from srlab.models.weights import save_weights


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two HR photos whose x4 LR images hold a few 32x32 patches."""
    return write_folder(tmp_path_factory.mktemp("arm") / "HR", {
        "astronaut": ("astronaut", (192, 160)), "coffee": ("coffee", (160, 128)),
    })


@pytest.fixture(scope="module")
def weights(photos):
    """A randomly initialised ARM-FSRCNN supernet saved by srlab, and its router trained for a few steps."""
    torch.manual_seed(0)
    supernet = srlab.create_model("arm_fsrcnn", scale=4).eval()
    path = photos.parent / "arm_fsrcnn.safetensors"
    save_weights(path, supernet)
    folder = discover_pairs(photos, 4)
    router, _ = calibrate_arm_router(supernet, (load_pair(p, 4) for p in folder.pairs), steps=40)
    save_arm_router(router_file(path), router, supernet)
    return path


def _method(weights, knob):
    supernet = srlab.create_model(checkpoint=weights).eval()
    return supernet, build_adaptive("arm_learned", supernet, checkpoint=weights, knob=knob)


def test_the_router_round_trips_and_rate_zero_is_the_full_width_without_the_router(weights):
    supernet, method = _method(weights, 0.0)
    assert isinstance(method, ArmLearnedRouting) and method.route_names() == ("bicubic", "width 16", "width 36", "width 56")
    lr = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(1))
    sr, stats = method.upscale(lr)
    assert stats.route_counts[:-1] == (0, 0, 0) and stats.router_macs == 0
    assert torch.equal(sr, torch.round(supernet(lr).clamp(0, 1) * 255) / 255)  # the full width, rounded as ARM's test


def test_the_router_file_records_its_shape_and_older_files_load_with_the_first_shape(weights, tmp_path):
    from safetensors import safe_open
    from srlab.adaptive.arm_learned import ROUTER_CONTRAST, ROUTER_WIDTH, UNRECORDED_SHAPE, _fresh_router

    supernet = srlab.create_model(checkpoint=weights).eval()
    with safe_open(str(router_file(weights)), framework="pt") as f:
        meta = f.metadata()
    assert (meta["router_width"], meta["router_contrast"]) == (str(ROUTER_WIDTH), json.dumps(ROUTER_CONTRAST))
    router = load_arm_router(router_file(weights), supernet)
    assert router.body[0].out_channels == ROUTER_WIDTH and router.contrast == ROUTER_CONTRAST
    # a session-25 file: no shape in its metadata, rdsr_adaptive's router shape
    from safetensors.torch import save_file

    old = _fresh_router(supernet, **UNRECORDED_SHAPE)
    path = tmp_path / "old.router.safetensors"
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, str(path), metadata={
        "srlab": "arm_learned router", "model": "arm_fsrcnn", "widths": json.dumps(list(supernet.widths))})
    loaded = load_arm_router(path, supernet)
    assert loaded.body[0].out_channels == UNRECORDED_SHAPE["width"] and not loaded.contrast


def test_each_patch_takes_the_route_of_least_predicted_loss_plus_the_rate_times_its_share(weights):
    supernet, method = _method(weights, 0.5)
    patches = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * torch.linspace(0, 1, 12)[:, None, None, None]
    diffs, full = method.router.predict(patches)
    costs = torch.tensor([route_macs(method, i, (32, 32)) for i in range(4)], dtype=torch.float64)
    price = 0.5 * float(full.mean()) / DB_PER_RELATIVE_ERROR
    expected = torch.argmin(diffs + price * costs / costs[-1], dim=1)
    assert torch.equal(method.route(patches), expected) and costs[0] == 0 and costs[1] < costs[2] < costs[3]
    spent = []
    for rate in (0.1, 1.0, 10.0):
        method.knob = rate
        spent.append(float(costs[method.route(patches)].sum()))
    assert spent[0] >= spent[1] >= spent[2]


def test_the_region_mode_weighs_the_margins_a_lone_block_would_cost(weights, monkeypatch):
    supernet, method = _method(weights, 1.0)
    costs = torch.tensor([0.0, 0.3, 0.6, 1.0], dtype=torch.float64)
    # every block's full width is clearly worth it, but the centre one's bicubic route saves 0.1 of a price
    diffs = torch.tensor([[2.0, 2.0, 2.0, 0.0]], dtype=torch.float64).repeat(9, 1)
    diffs[4] = torch.tensor([0.9, 2.0, 2.0, 0.0])
    monkeypatch.setattr(method, "_priced", lambda patches: (diffs, costs, 1.0))
    patches = torch.zeros(9, 3, 32, 32)
    assert method.route(patches).tolist() == [3] * 4 + [0] + [3] * 4  # alone, bicubic
    method.region_margin = 0
    assert method.route_blocks(patches, (3, 3)).tolist() == [3] * 4 + [0] + [3] * 4
    method.region_margin = 3  # 4 sides x 3/32 of (0 + 1) = 0.375 > 0.1 saved: the full width
    assert method.route_blocks(patches, (3, 3)).tolist() == [3] * 9
    seen = []
    monkeypatch.setattr(method, "route_blocks", lambda p, grid: seen.append(grid) or torch.full((len(p),), 3))
    method.upscale(torch.rand(1, 3, 70, 40))
    assert seen == [(3, 2)]  # the region mode routes through route_blocks, with its block grid


@pytest.mark.parametrize("problem", ["missing", "corrupt", "other model"])
def test_a_missing_corrupt_or_foreign_router_is_a_one_line_error(weights, tmp_path, problem):
    supernet = srlab.create_model(checkpoint=weights).eval()
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(weights.read_bytes())
    if problem == "corrupt":
        router_file(copy).write_bytes(b"not safetensors")
    if problem == "other model":
        carn = srlab.create_model("arm_carn", scale=4)
        save_arm_router(router_file(copy), load_arm_router(router_file(weights), supernet), carn)
    message = {"missing": "needs the router", "corrupt": "is not a readable router",
               "other model": "is not a router of arm_fsrcnn"}[problem]
    with pytest.raises(SrlabError, match=message) as error:
        build_adaptive("arm_learned", supernet, checkpoint=copy)
    assert "srlab arm-router" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(SrlabError, match="runs ARM supernets"):
        build_adaptive("arm_learned", srlab.create_model("rdsr_s", scale=4), checkpoint=copy)


def test_cli_trains_the_router_beside_the_weights_and_eval_routes_with_it(capsys, tmp_path, photos, weights):
    copy = tmp_path / "supernet.safetensors"
    copy.write_bytes(weights.read_bytes())
    code, out, _ = run_cli(capsys, "arm-router", "--checkpoint", copy, "--data", photos, "--steps", "20")
    assert code == 0 and "router trained on 2 images (20 steps" in out and router_file(copy).is_file()
    narrow = tmp_path / "narrow.safetensors"
    narrow.write_bytes(weights.read_bytes())
    code, _, _ = run_cli(capsys, "arm-router", "--checkpoint", narrow, "--data", photos, "--steps", "2",
                         "--router-width", "8")
    router = load_arm_router(router_file(narrow), srlab.create_model(checkpoint=narrow))
    assert code == 0 and router.body[0].out_channels == 8
    code, _, err = run_cli(capsys, "arm-router", "--checkpoint", copy, "--data", photos, "--out", tmp_path / "r.pt")
    assert code == 2 and re.search(r"--out .* must end in \.router\.safetensors", err)
    spent = []
    for knob in ("0", "2"):
        out_json = tmp_path / f"eval_{knob}.json"
        code, stdout, _ = run_cli(capsys, "eval", "--checkpoint", copy, "--adaptive", "arm_learned", "--knob", knob,
                                  "--data", photos, "--json", out_json, "--quiet")
        result = json.loads(out_json.read_text())["results"][0]
        assert code == 0 and result["adaptive"]["method"] == "arm_learned" and result["adaptive"]["knob_name"] == "rate"
        spent.append(result["macs_spent"] / result["macs_full"])
    assert spent[0] == pytest.approx(1.0) and spent[1] < 1.0


def test_calibration_adds_each_photos_downscaled_copies_whose_lr_holds_a_patch(photos, weights, monkeypatch, capsys,
                                                                               tmp_path):
    from srlab.cli import arm_router
    from srlab.cli.common import readable_pairs
    folder = discover_pairs(photos, 4)
    sizes = [tuple(lr.shape[-2:]) for lr, _ in readable_pairs(folder, 4, {}, min_lr_side=32, downscales=(0.9, 0.5))]
    # astronaut 160x192 -> x0.9 144x173 (modcropped 144x172); coffee 128x160 -> x0.9 LR 29 rows: too small
    assert sizes == [(40, 48), (36, 43), (32, 40)]
    seen = {}

    def calibrate(model, pairs, **kw):
        seen["sizes"] = [tuple(lr.shape[-2:]) for lr, _ in pairs]
        raise SrlabError("stop here")
    monkeypatch.setattr(arm_router, "calibrate_arm_router", calibrate)
    copy = tmp_path / "supernet.safetensors"
    copy.write_bytes(weights.read_bytes())
    run_cli(capsys, "arm-router", "--checkpoint", copy, "--data", photos, "--downscales", "0.9")
    assert seen["sizes"] == [(40, 48), (36, 43), (32, 40)]
    run_cli(capsys, "arm-router", "--checkpoint", copy, "--data", photos, "--downscales")
    assert seen["sizes"] == [(40, 48), (32, 40)]
    code, _, err = run_cli(capsys, "arm-router", "--checkpoint", copy, "--data", photos, "--downscales", "1.5")
    assert code == 2 and "must be a number between 0 and 1 (exclusive), got '1.5'" in err


def test_an_image_smaller_than_the_routers_patch_is_reported_and_the_others_used(capsys, tmp_path, photos, weights):
    data = tmp_path / "data"
    shutil.copytree(photos, data)
    write_folder(data, {"tiny": ("chelsea", (64, 64))})  # 16x16 LR at x4
    copy = tmp_path / "supernet.safetensors"
    copy.write_bytes(weights.read_bytes())
    code, out, err = run_cli(capsys, "arm-router", "--checkpoint", copy, "--data", data, "--steps", "5")
    assert code == 1 and "router trained on 2 images" in out and router_file(copy).is_file()
    assert err.strip().splitlines() == [
        "srlab: error: tiny: LR 16x16 is smaller than the 32x32 patches the router learns from: give larger images"
    ]
