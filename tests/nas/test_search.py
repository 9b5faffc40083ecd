"""srlab nas end to end on tiny images (one training iteration per trial): a search completes, writes its
Pareto front and a loadable best config, resumes, retries a trial a killed process left running, and
never trains an architecture over the budget."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

optuna = pytest.importorskip("optuna")

from srlab.errors import SrlabError  # noqa: E402
from srlab.models.create import create_model  # noqa: E402
from srlab.nas.search import SearchSettings, _storage, open_study, parse_macs, search  # noqa: E402
from srlab.train.config import TrainConfig, apply_overrides, load_yaml  # noqa: E402
from conftest import run_cli  # noqa: E402

TINY = {"epochs": 1, "data": {"patch_size": 16, "batch_size": 2}}
BUDGET = 4_000_000  # on a 12x12 LR image at x2: the smallest architectures fit, rdsr_s (9.6M) does not


def _images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = (np.random.default_rng(i).random((24, 24, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def data(tmp_path) -> tuple[Path, Path]:
    return _images(tmp_path / "train", 2), _images(tmp_path / "val", 1)


def _settings(data, out: Path, *, trials: int, sampler: str = "tpe") -> SearchSettings:
    return SearchSettings(space="rdsr", budget_macs=BUDGET, scale=2, trials=trials, train_dir=str(data[0]),
                          val_dir=str(data[1]), out=out, lr_size=(12, 12), sampler=sampler, latency_repeats=1,
                          proxy=TINY)


def _trials(settings: SearchSettings, state: str) -> list:
    return open_study(settings).get_trials(states=(getattr(optuna.trial.TrialState, state),))


def test_a_search_writes_its_pareto_front_and_a_loadable_best_config_then_resumes(data, tmp_path):
    settings = _settings(data, tmp_path / "nas", trials=3)
    result = search(settings)
    assert result.complete == 3
    front = json.loads((settings.out / "pareto.json").read_text())
    assert front and all({"config", "macs", "params", "psnr_y", "latency_ms"} <= set(entry) for entry in front)
    assert all(entry["macs"] <= BUDGET for entry in front)
    best = max(front, key=lambda entry: entry["psnr_y"])
    config = TrainConfig()
    apply_overrides(config, load_yaml(settings.out / "best.yaml"))  # what `srlab train --config` does
    assert (config.scale, config.model.name, config.model.args) == (2, "rdsr_s", best["config"])
    create_model(config.model.name, scale=config.scale, args=config.model.args)
    trained = {t.number: t.values for t in _trials(settings, "COMPLETE")}
    for t in _trials(settings, "COMPLETE"):  # an architecture drawn again (twin_of) is scored, not retrained
        assert (settings.out / "trials" / str(t.number) / "best.safetensors").is_file() != ("twin_of" in t.user_attrs)
    for pruned in _trials(settings, "PRUNED"):  # counted, rejected, never trained
        assert pruned.user_attrs["macs"] > BUDGET
        assert not (settings.out / "trials" / str(pruned.number)).exists()

    settings.trials = 5
    search(settings)  # the same command with more trials continues the study
    resumed = {t.number: t.values for t in _trials(settings, "COMPLETE")}
    assert len(resumed) == 5 and {n: resumed[n] for n in trained} == trained


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_left_running_by_a_killed_process_is_failed_and_retried(data, tmp_path):
    settings = _settings(data, tmp_path / "nas", trials=1, sampler="random")
    settings.out.mkdir()
    study = open_study(settings)
    architecture = {"channels": 16, "num_blocks": 1, "block": "distill", "attention": "none",
                    "spatial_attention": "none", "upsampler": "subpixel"}
    study.enqueue_trial(architecture)
    killed = study.ask()
    _storage(settings).record_heartbeat(killed._trial_id)
    with sqlite3.connect(settings.out / "study.db") as db:  # its process died long ago
        db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
    search(settings)
    assert [t.number for t in _trials(settings, "FAIL")] == [killed.number]
    (retried,) = _trials(settings, "COMPLETE")
    assert retried.system_attrs["failed_trial"] == killed.number
    assert retried.user_attrs["model_args"] == architecture


def test_a_study_is_continued_only_with_its_own_settings(data, tmp_path):
    settings = _settings(data, tmp_path / "nas", trials=1)
    settings.out.mkdir()
    open_study(settings)
    settings.budget_macs = 2 * BUDGET
    with pytest.raises(SrlabError, match=r"study 'rdsr_x2' .* was made with budget_macs 4000000 \(now 8000000\)"):
        open_study(settings)
    settings.budget_macs, settings.proxy = BUDGET, {**TINY, "epochs": 2}  # scores of another proxy do not mix
    with pytest.raises(SrlabError, match=r"was made with proxy .*'epochs': 1.* \(now .*'epochs': 2"):
        open_study(settings)


@pytest.mark.parametrize(("text", "macs"), [("2G", 2_000_000_000), ("800M", 800_000_000), ("2.5e9", 2_500_000_000),
                                            ("1.5k", 1500), ("584070336", 584_070_336)])
def test_budgets_are_read_with_decimal_units(text, macs):
    assert parse_macs(text) == macs


def _nas(capsys, data, tmp_path, *flags):
    return run_cli(capsys, "nas", "--space", "rdsr", "--budget_macs", "4M", "--scale", "2", "--trials", "1",
                   "--train_dir", data[0], "--val_dir", data[1], "--out", tmp_path / "nas", "--lr_size", "12x12", *flags)


@pytest.mark.parametrize(("flags", "message"), [
    (["--space", "vit"], "unknown search space 'vit' (--space): use one of rdsr"),
    (["--budget_macs", "2X"], "--budget_macs '2X' is not a MAC count: use e.g. 2G, 800M or 2.5e9"),
    (["--budget_macs", "0.5M"], "--budget_macs 0.0005G is below the smallest architecture of space 'rdsr' (0.000934G "
                              "on a 12x12 LR image): raise the budget or lower --lr_size"),
    (["--train_dir", "/nonexistent"], "--train_dir '/nonexistent' is not a folder"),
    (["--storage", "nonsense"], "--storage 'nonsense' cannot be opened"),
    (["--set", "optim.lr=-1"], "the learning rate (--lr, optim.lr) must be > 0, got -1"),
    (["--set", "data.colour=1"], "unknown config key 'data.colour'"),
])
def test_bad_flags_are_one_line_errors_before_any_trial(capsys, data, tmp_path, flags, message):
    code, _, err = _nas(capsys, data, tmp_path, *flags)
    assert code == 2 and err.count("\n") == 1 and err.startswith("srlab: error: ")
    assert message in err
    assert not (tmp_path / "nas" / "trials").exists()


def test_without_optuna_the_command_names_the_extra_to_install(capsys, data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    code, _, err = _nas(capsys, data, tmp_path)
    assert (code, err) == (2, "srlab: error: srlab nas needs Optuna: pip install 'srlab[nas]'\n")


@pytest.mark.slow
def test_parallel_workers_share_the_study(capsys, data, tmp_path):
    code, out, _ = _nas(capsys, data, tmp_path, "--trials", "2", "--jobs", "2", "--threads", "1", "--epochs", "1",
                        "--patch_size", "16", "--batch_size", "2", "--latency_repeats", "1")
    assert code == 0 and "complete trials" in out
    assert len(json.loads((tmp_path / "nas" / "pareto.json").read_text())) >= 1


def test_an_architecture_drawn_again_is_not_trained_again(data, tmp_path):
    settings = _settings(data, tmp_path / "nas", trials=2)
    settings.out.mkdir()
    architecture = {"channels": 16, "num_blocks": 1, "block": "distill", "attention": "none",
                    "spatial_attention": "none", "upsampler": "subpixel"}
    study = open_study(settings)
    study.enqueue_trial(architecture)
    study.enqueue_trial(architecture)
    result = search(settings)
    first, again = _trials(settings, "COMPLETE")
    assert again.user_attrs["twin_of"] == first.number and again.values == first.values
    assert not (settings.out / "trials" / str(again.number)).exists()
    assert [entry["trial"] for entry in result.pareto] == [first.number]


@pytest.mark.slow
def test_an_nsga2_search_completes(data, tmp_path):
    settings = _settings(data, tmp_path / "nas", trials=2, sampler="nsga2")
    result = search(settings)
    assert result.complete == 2 and (settings.out / "best.yaml").is_file()


def test_a_search_on_a_postgresql_server_completes_and_resumes(data, tmp_path):
    """Many machines share one study through a PostgreSQL storage (.ci/run starts a server and sets the
    variable; SQLite is the single-machine default tested above)."""
    import os
    import uuid

    url = os.environ.get("SRLAB_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("SRLAB_TEST_POSTGRES_URL is not set: no PostgreSQL server for this run (.ci/run starts one)")
    settings = _settings(data, tmp_path / "nas", trials=1)
    settings.storage, settings.study_name = url, f"test_{uuid.uuid4().hex}"
    assert search(settings).complete == 1
    settings.trials, settings.out = 2, tmp_path / "second_machine"  # another machine: its own folder, the same study
    assert search(settings).complete == 2
    assert len(_trials(settings, "COMPLETE")) == 2
