"""``srlab rdsr-router``: train an rdsr_adaptive model's router from a folder, then route with it."""

import json
import shutil

import torch

import srlab
from conftest import run_cli
from srlab.models.weights import save_weights

SMALL = {"channels": 8, "num_blocks": 2, "ca_reduction": 4, "router_width": 4}


def _weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "adaptive.safetensors"
    save_weights(path, srlab.create_model("rdsr_adaptive", scale=2, args=SMALL))
    return path


def test_the_router_trains_from_a_folder_and_a_bad_image_is_reported(capsys, tmp_path, tiny_photos):
    weights = _weights(tmp_path)
    data = tmp_path / "calibration"
    shutil.copytree(tiny_photos["train"], data)  # 96x72 HR: two 32x32 LR patches each at x2
    (data / "broken.png").write_bytes(b"not a png")
    routed = tmp_path / "routed.safetensors"
    code, out, err = run_cli(capsys, "rdsr-router", "--checkpoint", weights, "--data", data, "--out", routed,
                             "--steps", 30)
    assert code == 1 and f"wrote {routed}" in out and "router trained on 4 images" in out
    assert len(err.strip().splitlines()) == 1 and "broken" in err
    model = srlab.create_model(checkpoint=routed)
    assert bool(model.router_trained) and not bool(srlab.create_model(checkpoint=weights).router_trained)
    result = tmp_path / "eval.json"
    code, _, err = run_cli(capsys, "eval", "--checkpoint", routed, "--data", tiny_photos["val"], "--knob", "0.1",
                           "--json", result, "--quiet")
    assert code == 0, err
    scored = json.loads(result.read_text())["results"][0]
    assert 0 < scored["macs_spent"] and scored["adaptive"]["knob_name"] == "loss"


def _recalibrated(capsys, tmp_path, tiny_photos, flag):
    """(the weights ``srlab rdsr-router ... flag`` writes, the weights it read), as models; the path written."""
    weights, routed = _weights(tmp_path), tmp_path / f"{flag.strip('-')}.safetensors"
    code, _, err = run_cli(capsys, "rdsr-router", "--checkpoint", weights, "--data", tiny_photos["train"],
                           "--out", routed, "--steps", 30, flag)
    assert code == 0, err
    return srlab.create_model(checkpoint=routed), srlab.create_model(checkpoint=weights), routed


def test_a_contrast_router_replaces_the_checkpoints_router(capsys, tmp_path, tiny_photos):
    model, plain, _ = _recalibrated(capsys, tmp_path, tiny_photos, "--router-contrast")
    assert model.router.contrast and bool(model.router_trained) and not plain.router.contrast
    assert torch.equal(model.fuse.weight, plain.fuse.weight)  # the network's own weights as they were
    other = tmp_path / "rdsr_s.safetensors"
    save_weights(other, srlab.create_model("rdsr_s", scale=2))
    code, _, err = run_cli(capsys, "rdsr-router", "--checkpoint", other, "--data", tiny_photos["train"],
                           "--out", tmp_path / "c2.safetensors", "--router-contrast")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "holds no rdsr_adaptive weights" in err


def test_a_bicubic_route_is_added_with_a_router_that_predicts_it(capsys, tmp_path, tiny_photos):
    model, plain, routed = _recalibrated(capsys, tmp_path, tiny_photos, "--bicubic-route")
    assert model.bicubic_route and model.num_routes == plain.num_routes + 1 and bool(model.router_trained)
    assert model.router.head.out_features == model.num_routes and not model.router.contrast
    assert torch.equal(model.fuse.weight, plain.fuse.weight)
    result = tmp_path / "eval.json"
    code, _, err = run_cli(capsys, "eval", "--checkpoint", routed, "--data", tiny_photos["val"], "--knob", "0.5",
                           "--json", result, "--quiet")
    assert code == 0, err
    assert "bicubic" in json.loads(result.read_text())["results"][0]["adaptive"]["routes"]


def test_bad_router_training_input_is_a_one_line_error(capsys, tmp_path, tiny_photos):
    weights = _weights(tmp_path)
    code, _, err = run_cli(capsys, "rdsr-router", "--checkpoint", weights, "--data", tiny_photos["train"],
                           "--out", tmp_path / "routed.pth")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "must end in .safetensors" in err
    other = tmp_path / "rdsr_s.safetensors"
    save_weights(other, srlab.create_model("rdsr_s", scale=2))
    code, _, err = run_cli(capsys, "rdsr-router", "--checkpoint", other, "--data", tiny_photos["train"],
                           "--out", tmp_path / "routed.safetensors")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "run an rdsr_adaptive model, got RDSR" in err
    code, _, err = run_cli(capsys, "rdsr-router", "--checkpoint", weights, "--data", tiny_photos["train"],
                           "--out", weights)
    assert code != 0 and len(err.strip().splitlines()) == 1


def test_a_feature_router_is_added_beside_the_first_router_and_upscaling_runs_the_cascade(capsys, tmp_path, tiny_photos):
    weights, routed, both = _weights(tmp_path), tmp_path / "routed.safetensors", tmp_path / "both.safetensors"
    for source, target, extra in ((weights, routed, ()), (routed, both, ("--feature_router",))):
        code, out, err = run_cli(capsys, "rdsr-router", "--checkpoint", source, "--data", tiny_photos["train"],
                                 "--out", target, "--steps", 30, *extra)
        assert code == 0, err
    assert "feature router trained on" in out and "router trained on" not in out.replace("feature router", "")
    model, first = srlab.create_model(checkpoint=both), srlab.create_model(checkpoint=routed)
    assert bool(model.feature_router_trained) and bool(model.router_trained)
    assert torch.equal(model.router.head.weight, first.router.head.weight)  # the first router as it was
    code, _, err = run_cli(capsys, "upscale", next(tiny_photos["val"].iterdir()), "-o", tmp_path / "out",
                           "--checkpoint", both, "--knob", "0.1")
    assert code == 0, err
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_the_router_can_learn_from_downscaled_copies_of_each_image(capsys, tmp_path, tiny_photos, monkeypatch):
    from srlab.cli import rdsr_router

    seen = []

    def calibrate(model, pairs, **kwargs):
        seen.append([tuple(lr.shape[-2:]) for lr, _ in pairs])
        return 0.0
    monkeypatch.setattr(rdsr_router, "calibrate_router", calibrate)
    weights = _weights(tmp_path)
    for flags in ((), ("--downscales", "0.9", "0.5")):
        code, _, err = run_cli(capsys, "rdsr-router", "--checkpoint", weights, "--data", tiny_photos["train"],
                               "--out", tmp_path / f"r{len(flags)}.safetensors", *flags)
        assert code == 0, err
    # HR 72x96 (rows x columns) at x2: LR 36x48; downscaled by 0.9 LR 32x43; by 0.5 LR 18x24, under one 32x32 patch
    assert seen[0] == [(36, 48)] * 4 and seen[1] == [(36, 48), (32, 43)] * 4
    code, _, err = run_cli(capsys, "rdsr-router", "--checkpoint", weights, "--data", tiny_photos["train"],
                           "--out", tmp_path / "bad.safetensors", "--downscales", "0")
    assert code == 2 and "between 0 and 1" in err
