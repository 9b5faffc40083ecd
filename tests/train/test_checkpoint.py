"""Crash consistency of the run directory: a kill between any two of its writes leaves a run whose
best.safetensors holds the weights state.pt records as best, and last.safetensors the weights of the
validation state.pt resumes from (rewritten from state.pt on resume where the kill left them behind)."""

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from srlab.errors import SrlabError
from srlab.train.checkpoint import content_digest
from srlab.train.config import TrainConfig
from srlab.train.trainer import train


class SimulatedKill(BaseException):
    """Raised in place of a write: nothing after it runs, as after SIGKILL."""


def _config(tiny_photos, out, epochs) -> TrainConfig:
    config = TrainConfig(scale=2, epochs=epochs, out=str(out), seed=0, deterministic=True)
    config.model.name = "rdsr_s"
    config.model.args = {"channels": 8, "num_blocks": 1}
    config.data.train_dir, config.data.val_dir = str(tiny_photos["train"]), str(tiny_photos["val"])
    config.data.patch_size, config.data.batch_size, config.data.repeat = 24, 4, 3
    config.optim.lr = 2e-3
    config.schedule.kind = "step"  # independent of the run's length: 1 epoch then 2 equals 2
    return config


def _same(a, b) -> bool:
    ta, tb = load_file(str(a)), load_file(str(b))
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def _state(run):
    return torch.load(run / "state.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tiny_photos, tmp_path_factory):
    """A run after epoch 1, and the same run after epoch 2 (whose validation improved on epoch 1's)."""
    root = tmp_path_factory.mktemp("runs")
    train(_config(tiny_photos, root / "epoch1", 1), progress=False)
    shutil.copytree(root / "epoch1", root / "epoch2")
    train(_config(tiny_photos, root / "epoch2", 2), resume=True, progress=False)
    assert _state(root / "epoch2")["best_epoch"] == 2  # epoch 2 improved: it writes state, last and best
    return root


def _kill_at_write(monkeypatch, n: int, targets: list[str]) -> None:
    """Make the n-th atomic rename (the n-th completed write) a kill; record every target."""
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        targets.append(os.path.basename(dst))
        if len(targets) == n:
            raise SimulatedKill
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_a_checkpoint_writes_state_first_then_last_then_best(runs, tiny_photos, tmp_path, monkeypatch):
    shutil.copytree(runs / "epoch1", tmp_path / "run")
    targets: list[str] = []
    _kill_at_write(monkeypatch, 0, targets)  # no kill
    train(_config(tiny_photos, tmp_path / "run", 2), resume=True, progress=False)
    assert targets == ["config.yaml", "state.pt", "last.safetensors", "best.safetensors"]


# The writes of resuming epoch1 to 2 epochs: config.yaml, then epoch 2's checkpoint: state.pt,
# last.safetensors, best.safetensors. Kill at each (before it lands), and after all of them.
@pytest.mark.parametrize(("kill_at", "rewritten"), [
    (1, ""), (2, ""), (3, "last.safetensors, best.safetensors"), (4, "best.safetensors"), (5, ""),
])
def test_a_kill_between_any_two_writes_loses_no_weights(runs, tiny_photos, tmp_path, monkeypatch, kill_at, rewritten):
    run = tmp_path / "run"
    shutil.copytree(runs / "epoch1", run)
    targets: list[str] = []
    _kill_at_write(monkeypatch, kill_at, targets)
    if kill_at <= 4:
        with pytest.raises(SimulatedKill):
            train(_config(tiny_photos, run, 2), resume=True, progress=False)
    else:
        train(_config(tiny_photos, run, 2), resume=True, progress=False)
    monkeypatch.undo()
    # Right after the kill: state.pt is the old or the new one, never half of either.
    killed = _state(run)
    assert killed["iteration"] == (3 if kill_at <= 2 else 6)

    train(_config(tiny_photos, run, 2), resume=True, progress=False)
    log = (run / "train.log").read_text()
    assert (f"rewrote {rewritten} from state.pt" in log) == bool(rewritten)
    state, reference = _state(run), _state(runs / "epoch2")
    assert (state["iteration"], state["best_epoch"], state["best_psnr"]) == (
        reference["iteration"], reference["best_epoch"], reference["best_psnr"])
    # The weights of the recorded best score, and of the step the state resumes from, exactly.
    assert _same(run / "best.safetensors", runs / "epoch2" / "best.safetensors")
    assert _same(run / "last.safetensors", runs / "epoch2" / "last.safetensors")
    weights = load_file(str(run / "last.safetensors"))
    assert all(torch.equal(weights[k], state["model"][k]) for k in weights)
    for name in ("last.safetensors", "best.safetensors"):
        assert content_digest((run / name).read_bytes()) == state["exports"][name]["digest"]
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]


def test_a_weight_file_changed_outside_srlab_is_an_error_on_resume(runs, tiny_photos, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "epoch2", run)
    state = _state(run)
    state["exports"]["best.safetensors"]["iteration"] = 1  # as if best were older than the state
    torch.save(state, run / "state.pt")
    (run / "best.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(SrlabError, match=r"best\.safetensors' does not hold the weights of iteration 1 .* restore it"):
        train(_config(tiny_photos, run, 3), resume=True, progress=False)


def test_temporary_files_a_kill_left_are_removed_by_the_next_checkpoint(runs, tiny_photos, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "epoch1", run)
    leftovers = [run / ".state.0123abcd.tmp.pt", run / ".best.89abcdef.tmp.safetensors"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    train(_config(tiny_photos, run, 2), resume=True, progress=False)
    assert not any(path.exists() for path in leftovers)
