"""Multi-task training (step: multitask): categories from sub-folders, the shared-feature head, its
gradient into the SR network, validation accuracy, exact resume, and runs without labels unchanged."""

import dataclasses

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import photo, run_cli, tiny_train_config
from srlab.data.datasets import PatchDataset
from srlab.data.io import read_rgb
from srlab.data.labels import LabelledPatches, discover_labelled, label_classes
from srlab.data.resize import bicubic_downscale
from srlab.errors import SrlabError
from srlab.models.create import create_model
from srlab.models.registry import build_model
from srlab.report.training_curves import parse_line
from srlab.train.config import TrainConfig, apply_overrides, validate
from srlab.train.multitask_step import CategoryHead, FeatureTap, feature_module_name
from srlab.train.trainer import train

# category -> {stem: (scikit-image photo, size)}: photos vs. the text and line-art samples.
_TRAIN = {
    "photo": {"astronaut": ("astronaut", (48, 40)), "coffee": ("coffee", (48, 40))},
    "text": {"page": ("page", (48, 40)), "text": ("text", (48, 40))},
}
_VAL = {"photo": {"chelsea": ("chelsea", (40, 32))}, "text": {"page": ("page", (40, 32))}}


def _write(root, categories):
    for category, images in categories.items():
        (root / category).mkdir(parents=True)
        for stem, (name, size) in images.items():
            Image.fromarray(photo(name, size)).save(root / category / f"{stem}.png")
    return root


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    return {"train": _write(root / "train", _TRAIN), "val": _write(root / "val", _VAL)}


def _config(labelled, out, **overrides):
    config = tiny_train_config({"train": labelled["train"], "val": labelled["val"]}, out, **overrides)
    config.step, config.data.labels, config.deterministic = "multitask", "folders", True
    config.multitask.head_channels = 8
    return config


def test_labels_come_from_the_sorted_sub_folder_names(labelled, tmp_path):
    (tmp_path / "val" / "drawing").mkdir(parents=True)  # a validation-only category joins the class list
    Image.fromarray(photo("horse", (20, 20))).save(tmp_path / "val" / "drawing" / "horse.png")
    for name in ("photo", "text"):
        (tmp_path / "val" / name).symlink_to(labelled["val"] / name)
    classes = label_classes(labelled["train"], tmp_path / "val")
    assert classes == ("drawing", "photo", "text")
    found = discover_labelled(labelled["train"], 2, classes, "train_dir")
    assert [p.name for p in found.folder.pairs] == ["photo/astronaut", "photo/coffee", "text/page", "text/text"]
    assert found.labels == (1, 1, 2, 2)
    patches = LabelledPatches(PatchDataset(found.folder.pairs, scale=2, patch_size=16, repeat=2), found.labels)
    assert [patches[i][2] for i in range(len(patches))] == [1, 1, 2, 2] * 2
    lr, hr, _ = patches[5]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 16, 16)


def test_folder_mistakes_are_one_line_errors(labelled, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(photo("coffee", (20, 20))).save(flat / "coffee.png")
    with pytest.raises(SrlabError, match=r"train_dir '.*flat' has no category sub-folders.*set data.labels to ''"):
        label_classes(flat, labelled["val"])
    (flat / "photo").mkdir()
    with pytest.raises(SrlabError, match=r"image 'coffee.png' is in no category sub-folder: move it"):
        label_classes(flat, labelled["val"])
    (flat / "coffee.png").unlink()
    (flat / "text").mkdir()
    with pytest.raises(SrlabError, match=r"category folder '.*flat/photo' holds no images.*add its images or remove"):
        discover_labelled(flat, 2, ("photo", "text"), "train_dir")
    only_photo = tmp_path / "val_photo"
    (only_photo / "photo").mkdir(parents=True)
    with pytest.raises(SrlabError, match=r"category 'text' of train_dir has no sub-folder in val_dir .*add '.*text'"):
        label_classes(labelled["train"], only_photo)


def test_the_cli_refuses_a_flat_folder_in_one_line(labelled, tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(photo("coffee", (48, 48))).save(flat / "coffee.png")
    code, _, err = run_cli(capsys, "train", "--train_dir", flat, "--val_dir", labelled["val"], "--out",
                           tmp_path / "run", "--set", "step=multitask", "--set", "data.labels=folders", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"srlab: error: train_dir '{flat}' has no category sub-folders")


@pytest.mark.parametrize(("changes", "message"), [
    ({"step": "multitask"}, r"step multitask needs image categories: set data.labels: folders"),
    ({"data": {"labels": "folders"}}, r"data.labels is only read by step multitask, not by step supervised"),
    ({"data": {"labels": "names"}}, r"unknown data.labels 'names': use folders"),
    ({"step": "multitask", "data": {"labels": "folders"}, "multitask": {"weight": -1}},
     r"multitask.weight must be >= 0"),
    ({"step": "multitask", "data": {"labels": "folders"}, "compile": True}, r"forward hook.*set compile false"),
    ({"step": "multitask", "data": {"labels": "folders"}, "losses": [{"name": "gan", "weight": 0.1}]},
     r"losses: step multitask trains no discriminator: remove the gan term"),
])
def test_config_mistakes_are_one_line_errors(changes, message):
    config = TrainConfig()
    config.data.train_dir, config.data.val_dir = "train", "val"
    apply_overrides(config, changes)
    with pytest.raises(SrlabError, match=message):
        validate(config)


def test_the_head_reads_rdsrs_fused_features_and_its_gradient_reaches_the_backbone():
    torch.manual_seed(0)
    # PyTorch's init: the default bicubic init zeroes the fusion, which passes no gradient to the blocks
    # before the first step.
    model = build_model("rdsr_s", scale=2, args={"channels": 8, "num_blocks": 2, "init": "default"})
    assert feature_module_name(model, "") == "tail"  # the features entering the upsampler
    with pytest.raises(SrlabError, match=r"multitask.features 'trunk' is not a module of the model: use one of head"):
        feature_module_name(model, "trunk")
    head = CategoryHead(8, ("photo", "text"), width=4)
    tap = FeatureTap(model, "")
    with tap.watching():
        sr = model(torch.rand(2, 3, 12, 12))
    features = tap.take()
    assert features.shape == (2, 8, 12, 12) and sr.shape == (2, 3, 24, 24)
    torch.nn.functional.cross_entropy(head(features), torch.tensor([0, 1])).backward()
    for name in ("head.weight", "blocks.0.conv1.weight", "fuse.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.tail.weight.grad is None  # the upsampler is after the tapped features


@pytest.mark.parametrize("space", ["ycbcr", "y"])
def test_in_a_colour_space_the_head_reads_the_wrapped_networks_features(labelled, tmp_path, space):
    config = _config(labelled, tmp_path / "run", epochs=1)
    config.data.color_space = space
    train(config, progress=False)
    model = create_model(checkpoint=tmp_path / "run" / "last.safetensors")
    assert feature_module_name(model, "") == "net.tail"  # not the wrapper's own network as a whole
    assert "val_acc " in _validation_lines(tmp_path / "run")[-1]


def test_the_head_refuses_a_state_trained_on_other_categories():
    state = CategoryHead(8, ("photo", "text"), width=4).state_dict()
    with pytest.raises(SrlabError, match=r"trained on the categories photo, text, but the data folders now give "
                                         r"drawing, photo, text: resume with the run's folders"):
        CategoryHead(8, ("drawing", "photo", "text"), width=4).load_state_dict(state)


def _tail_input(model, lr):
    """The features entering rdsr's upsampler (the tail's input) for one LR image."""
    seen = []
    handle = model.tail.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0]))
    model(lr.unsqueeze(0))
    handle.remove()
    return seen[0]


def _validation_lines(run_dir):
    return [line for line in (run_dir / "train.log").read_text().splitlines() if "val_psnr_y" in line]


def test_a_run_reports_the_accuracy_and_trains_backbone_and_head(labelled, tmp_path):
    config = _config(labelled, tmp_path / "run")
    config.multitask.weight = 1.0
    train(config, progress=False)
    lines = _validation_lines(tmp_path / "run")
    assert len(lines) == 2 and all("loss_ce " in line for line in lines)
    record = parse_line(lines[-1])
    assert record.accuracy in (0.0, 0.5, 1.0) and record.psnr_y > 20  # two validation images
    assert record.losses["ce"] > 0
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step_modules"]["generators.classifier._extra_state"] == {"classes": ["photo", "text"]}
    assert state["step_modules"]["generators.classifier.linear.weight"].shape == (2, 8)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "(categories photo, text)" in log
    # The logged accuracy is the head's, on the last weights' tail features of each whole validation image.
    model = create_model(checkpoint=tmp_path / "run" / "last.safetensors")
    head = CategoryHead(8, ("photo", "text"), width=8)
    prefix = "generators.classifier."
    head.load_state_dict({k[len(prefix):]: v for k, v in state["step_modules"].items() if k.startswith(prefix)})
    hits = []
    for label, image in ((0, labelled["val"] / "photo" / "chelsea.png"), (1, labelled["val"] / "text" / "page.png")):
        lr = bicubic_downscale(read_rgb(image), 2, quantize=True)
        with torch.no_grad():
            logits = head(_tail_input(model, lr))
        hits.append(int(logits.argmax(dim=1).item() == label))
    assert record.accuracy == pytest.approx(sum(hits) / 2, abs=1e-4)


def test_weight_zero_trains_the_sr_network_exactly_as_supervised(labelled, tmp_path):
    """The probe (weight 0) learns on detached features: the model's weights are the plain run's, bit for
    bit; with a positive weight they differ (the cross-entropy reaches the backbone)."""
    results = {}
    for name, weight in (("probe", 0.0), ("joint", 1.0)):
        config = _config(labelled, tmp_path / name)
        config.multitask.weight = weight
        train(config, progress=False)
        results[name] = load_file(str(tmp_path / name / "last.safetensors"))
    plain = tiny_train_config({"train": labelled["train"], "val": labelled["val"]}, tmp_path / "plain",
                              deterministic=True)
    # The same images in the same order (the labelled pairs are listed category by category).
    plain_dir = tmp_path / "plain_data"
    for split in ("train", "val"):
        (plain_dir / split).mkdir(parents=True)
        for image in sorted(labelled[split].glob("*/*.png")):
            (plain_dir / split / f"{image.parent.name}_{image.name}").symlink_to(image)
    plain.data.train_dir, plain.data.val_dir = str(plain_dir / "train"), str(plain_dir / "val")
    train(plain, progress=False)
    supervised = load_file(str(tmp_path / "plain" / "last.safetensors"))
    assert all(torch.equal(supervised[k], results["probe"][k]) for k in supervised)
    assert not all(torch.equal(supervised[k], results["joint"][k]) for k in supervised)
    assert [line.split(" best_psnr_y")[0].split(" val_acc")[0][20:] for line in _validation_lines(tmp_path / "probe")] \
        == [line.split(" best_psnr_y")[0][20:] for line in _validation_lines(tmp_path / "plain")]
    assert "val_acc" not in (tmp_path / "plain" / "train.log").read_text()


def test_a_run_trained_in_two_parts_ends_as_one_run(labelled, tmp_path):
    whole = _config(labelled, tmp_path / "whole", epochs=4)
    whole.schedule.total_epochs = 4
    train(whole, progress=False)
    part = dataclasses.replace(whole, out=str(tmp_path / "parts"), epochs=2)
    train(part, progress=False)
    train(dataclasses.replace(part, epochs=4), resume=True, progress=False)
    a = torch.load(tmp_path / "whole" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "state.pt", weights_only=True)
    for key in ("model", "step_modules"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key] if isinstance(a[key][k], torch.Tensor)), key
    assert _validation_lines(tmp_path / "whole")[-1].split(" time ")[0][20:] == \
        _validation_lines(tmp_path / "parts")[-1].split(" time ")[0][20:]
