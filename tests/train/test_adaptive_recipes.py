"""The internally adaptive models train from their recipes (configs/camixersr_x4.yaml, smsr_x2.yaml,
pcsr_carn_x4_phase{0,1}.yaml) through ``srlab train``: their routing penalties reach the objective
through ``LossInputs.aux``, SMSR follows its epoch schedules, PCSR's phases freeze what the official ones do."""

import re

import torch
from safetensors.torch import load_file

import srlab.models.smsr as smsr_module
from conftest import CONFIGS
from srlab.cli.main import main


# Tiny widths so that an epoch of 8 patches takes a second or so.
TINY_MODELS = {
    "camixersr_x4": "model.args={n_feats: 12, n_blocks: [1], window_size: 8}",
    "smsr_x2": "model.args={n_feats: 16}",
    "pcsr_carn_x4_phase0": "model.args={channels: 8}",
    "pcsr_carn_x4_phase1": "model.args={channels: 8}",
}


def _train(name, tiny_photos, out, *extra, epochs=1):
    argv = [
        "train", "--config", str(CONFIGS / f"{name}.yaml"), "--train_dir", str(tiny_photos["train"]),
        "--val_dir", str(tiny_photos["val"]), "--out", str(out), "--epochs", str(epochs), "--batch_size", "4",
        "--patch_size", "32", "--device", "cpu", "--deterministic", "--quiet", "--set", TINY_MODELS[name],
        "--set", "data.repeat=2", *extra,
    ]
    assert main(argv) == 0
    return [line for line in (out / "train.log").read_text().splitlines() if "val_psnr_y" in line]


def _term(line, name):
    return float(re.search(rf"loss_{name} (\S+)", line).group(1))


def test_camixersr_ratio_loss_is_a_logged_term_that_changes_training(tiny_photos, tmp_path):
    (line,) = _train("camixersr_x4", tiny_photos, tmp_path / "with")
    assert _term(line, "l1") > 0 and 0 < _term(line, "aux_penalty") <= 0.25  # 2 * 0.5 * (share - 0.5)^2
    _train("camixersr_x4", tiny_photos, tmp_path / "without", "--set", "losses=[{name: l1}]")
    with_penalty = torch.load(tmp_path / "with" / "state.pt", weights_only=True)["model"]
    without = torch.load(tmp_path / "without" / "state.pt", weights_only=True)["model"]
    changed = [k for k in with_penalty if not torch.equal(with_penalty[k], without[k])]
    assert any(".route." in k for k in changed)  # the penalty trains the window predictors


def test_smsr_follows_the_epoch_schedules(tiny_photos, tmp_path, monkeypatch):
    taus = []
    real = smsr_module.SMSR.set_tau

    def spy(model, tau):
        taus.append(tau)
        real(model, tau)

    monkeypatch.setattr(smsr_module.SMSR, "set_tau", spy)
    first, second = _train("smsr_x2", tiny_photos, tmp_path / "run", epochs=2)
    assert sorted(set(taus)) == [1 - 1 / 500, 1.0]  # tau = max(1 - (epoch - 1) / 500, 0.4), epochs 1 and 2
    assert taus.index(1 - 1 / 500) == 2  # two steps of epoch 1, then epoch 2
    # lambda = min((epoch - 1) / 50, 1) * 0.1: no sparsity term in epoch 1, 1/50 of it in epoch 2
    assert _term(first, "aux_penalty") == 0 and 0 < _term(second, "aux_penalty") <= 1 / 50


def test_pcsr_phases_train_what_the_official_ones_train(tiny_photos, tmp_path):
    (line0,) = _train("pcsr_carn_x4_phase0", tiny_photos, tmp_path / "phase0")
    assert "loss_l1" in line0 and "loss_pcsr_average" not in line0
    start = torch.load(tmp_path / "phase0" / "state.pt", weights_only=True)["model"]
    phase0 = load_file(str(tmp_path / "phase0" / "last.safetensors"))
    init = "init_from=" + str(tmp_path / "phase0" / "last.safetensors")
    (line1,) = _train("pcsr_carn_x4_phase1", tiny_photos, tmp_path / "phase1", "--set", init)
    assert _term(line1, "l1") > 0 and 0 <= _term(line1, "pcsr_average") <= 1
    phase1 = torch.load(tmp_path / "phase1" / "state.pt", weights_only=True)["model"]
    assert set(phase1) == set(phase0)
    frozen = [k for k in phase0 if k.startswith(("encoder.", "heavy_sampler."))]
    # the backbone and heavy sampler come through phase 1 untouched, BatchNorm statistics included
    assert any("running_mean" in k for k in frozen)
    assert all(torch.equal(phase1[k], phase0[k]) for k in frozen)
    # phase 1 trains the light sampler and the classifier, which phase 0 left at their initialisation
    for part in ("light_sampler.", "classifier."):
        keys = [k for k in phase0 if k.startswith(part)]
        assert all(torch.equal(phase0[k], start[k]) for k in keys)
        assert any(not torch.equal(phase1[k], phase0[k]) for k in keys)


def test_pcsr_balance_term_changes_training(tiny_photos, tmp_path):
    _train("pcsr_carn_x4_phase0", tiny_photos, tmp_path / "phase0")
    init = "init_from=" + str(tmp_path / "phase0" / "last.safetensors")
    runs = {}
    for label, losses in (("with", None), ("without", "losses=[{name: l1, weight: 1000.0}]")):
        extra = ("--set", init) + (("--set", losses) if losses else ())
        _train("pcsr_carn_x4_phase1", tiny_photos, tmp_path / label, *extra)
        runs[label] = torch.load(tmp_path / label / "state.pt", weights_only=True)["model"]
    changed = [k for k in runs["with"] if not torch.equal(runs["with"][k], runs["without"][k])]
    assert any(k.startswith("classifier.") for k in changed)
    assert not any(k.startswith(("encoder.", "heavy_sampler.")) for k in changed)  # frozen either way


def _fails(argv_tail, tiny_photos, out, capsys):
    argv = [
        "train", "--train_dir", str(tiny_photos["train"]), "--val_dir", str(tiny_photos["val"]), "--out", str(out),
        "--scale", "2", "--epochs", "1", "--batch_size", "4", "--patch_size", "32", "--device", "cpu", "--quiet",
        "--model", "rdsr_s", "--set", "model.args={channels: 8, num_blocks: 1}", *argv_tail,
    ]
    assert main(argv) != 0
    return capsys.readouterr().err.strip().splitlines()


def test_a_penalty_the_model_does_not_compute_is_a_one_line_error(tiny_photos, tmp_path, capsys):
    lines = _fails(["--set", "losses=[{name: l1}, {name: aux_penalty, params: {key: ratio_loss}}]"],
                   tiny_photos, tmp_path / "run", capsys)
    assert lines == ["srlab: error: aux_penalty: the model's training forward gave no 'ratio_loss' (its aux outputs: "
                     "none): train a model that computes it, or fix params.key"]


def test_scheduled_step_without_anything_to_schedule_is_refused(tiny_photos, tmp_path, capsys):
    lines = _fails(["--set", "step=scheduled"], tiny_photos, tmp_path / "run", capsys)
    assert lines == ["srlab: error: step scheduled: neither model 'rdsr_s' nor its losses follow an epoch "
                     "schedule: use step: supervised"]
