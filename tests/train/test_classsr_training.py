"""ClassSR's three training stages through ``srlab train`` and the configs in configs/, end to end on tiny
proxy data: sub-images of scikit-image photos, split into classes, three branch runs, the classifier run
with the branches frozen, the joint run; then the routed inference of the result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import srlab
from conftest import CONFIGS, config_as_written
from srlab.adaptive import adaptive_upscale
from srlab.adaptive.classsr import ClassSRRouting, classsr
from srlab.cli.main import main
from srlab.data.io import list_images, read_rgb
from srlab.data.subimages import extract_subimages, reference_psnr, split_by_difficulty
from srlab.models.weights import read_checkpoint

STAGES = ("classsr_fsrcnn_stage1", "classsr_fsrcnn_stage2", "classsr_fsrcnn_stage3")
# Tiny: 48x48 HR sub-images (LR 12x12), batches of 4, one epoch per run.
TINY = ("--patch_size", "48", "--batch_size", "4", "--epochs", "1", "--device", "cpu", "--quiet",
        "--set", "data.num_workers=0", "--set", "schedule.total_epochs=0")


@pytest.mark.parametrize("name", STAGES)
def test_the_stage_configs_are_valid_as_written(name):
    config = config_as_written(name)
    assert config.model.name == "classsr_fsrcnn" and config.scale == 4
    srlab.create_model(config.model.name, scale=config.scale, args=config.model.args)


def test_stage_two_config_trains_the_classifier_alone(tiny_photos, tmp_path):
    """The fast smoke test: one stage-2 run from fresh weights; the branches stay as they were."""
    out = tmp_path / "s2"
    assert main(["train", "--config", str(CONFIGS / "classsr_fsrcnn_stage2.yaml"), "--train_dir", str(tiny_photos["train"]),
                 "--val_dir", str(tiny_photos["val"]), "--out", str(out), "--seed", "3", *TINY]) == 0
    log = (out / "train.log").read_text()
    assert "loss_class_loss" in log and "loss_average_loss" in log and "loss_l1" in log
    trained = read_checkpoint(out / "last.safetensors").state_dict
    torch.manual_seed(3)
    fresh = srlab.create_model("classsr_fsrcnn", scale=4).state_dict()
    assert all(torch.equal(trained[k], fresh[k]) for k in fresh if k.startswith("net"))
    assert not torch.equal(trained["classifier.lastOut.weight"], fresh["classifier.lastOut.weight"])


def _train(stage: str, train_dir: Path, val_dir: Path, out: Path, *extra: str) -> dict[str, torch.Tensor]:
    assert main(["train", "--config", str(CONFIGS / f"{stage}.yaml"), "--train_dir", str(train_dir),
                 "--val_dir", str(val_dir), "--out", str(out), *TINY, *extra]) == 0
    return read_checkpoint(out / "last.safetensors").state_dict


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_three_stages_end_to_end(tiny_photos, tmp_path):
    sub = tmp_path / "sub"
    assert extract_subimages(tiny_photos["train"], sub, crop=48, step=24, min_rest=12).written == 24
    # Thresholds at the tertiles of the bicubic reference's PSNRs, so that every class has sub-images.
    bicubic = srlab.create_model("bicubic", scale=4).eval()
    values = sorted(reference_psnr(bicubic, read_rgb(p), 4) for p in list_images(sub))
    split = split_by_difficulty(sub, tmp_path / "classes", model=bicubic, scale=4, thresholds=(values[8], values[16]))
    assert split.counts == (8, 8, 8)

    previous = None
    for k in (1, 2, 3):  # stage 1: one branch per run, each from the last run's weights
        extra = ("--set", f"model.args.trains=net{k}", *(("--init_from", str(previous)) if previous else ()))
        state = _train("classsr_fsrcnn_stage1", tmp_path / "classes" / f"class{k}", tiny_photos["val"],
                       tmp_path / f"s1_net{k}", *extra)
        if previous is not None:
            before = read_checkpoint(previous).state_dict
            assert _same(_part(state, f"net{k - 1}."), _part(before, f"net{k - 1}."))  # earlier branches kept
            assert not _same(_part(state, f"net{k}."), _part(before, f"net{k}."))
        previous = tmp_path / f"s1_net{k}" / "last.safetensors"
    stage1 = read_checkpoint(previous).state_dict

    stage2 = _train("classsr_fsrcnn_stage2", sub, tiny_photos["val"], tmp_path / "s2", "--init_from", str(previous))
    for net in ("net1.", "net2.", "net3."):
        assert _same(_part(stage2, net), _part(stage1, net))  # branches fixed
    assert not _same(_part(stage2, "classifier."), _part(stage1, "classifier."))

    stage3 = _train("classsr_fsrcnn_stage3", sub, tiny_photos["val"], tmp_path / "s3",
                    "--init_from", str(tmp_path / "s2" / "last.safetensors"))
    for part in ("classifier.", "net1.", "net2.", "net3."):
        assert not _same(_part(stage3, part), _part(stage2, part))  # everything fine-tuned
    log = (tmp_path / "s3" / "train.log").read_text()
    assert "loss_class_loss" in log and "loss_average_loss" in log

    # The result runs routed: MACs grow along the knob sweep, never past the full path.
    model = srlab.create_model(checkpoint=tmp_path / "s3" / "last.safetensors").eval()
    lr = read_rgb(sorted(list_images(tiny_photos["val"]))[0])[None]
    spent = []
    for k in ClassSRRouting.knob_sweep:
        sr, stats = adaptive_upscale(classsr(model, knob=k), lr, patch=12, stride=8)
        assert torch.isfinite(sr).all() and stats.macs_spent <= stats.macs_full
        spent.append(stats.macs_spent)
    assert spent == sorted(spent)
