"""The run directory: what it holds, the order its files are written in, and reading them back.

A run directory holds:

- ``config.yaml``: the resolved configuration;
- ``state.pt``: what resuming needs (:meth:`srlab.train.state.RunState.state`: weights, EMA,
  optimisers, position in the data, RNG states, scores, the stage and its modules) and a record of the
  two weight files below, a plain dict loaded with ``weights_only=True``;
- ``last.safetensors`` / ``best.safetensors``: the weights evaluated at the last and at the best
  validation, with the model's name, hyper-parameters and scale in their metadata;
- ``last.<name>.safetensors`` / ``best.<name>.safetensors``: for step kinds that export networks they
  train beside the model (``StepModules.exported``: CAR's resampler), those networks at the same
  validations, written and repaired like the model's files (each has its own record in ``state.pt``);
- ``train.log``: one line per validation (only ever appended to).

Write order and crash consistency
---------------------------------
``state.pt`` is the run's single source of truth, and the commit point of a checkpoint: it is written
first (atomically), and records for ``last`` and ``best`` the iteration whose weights they hold, their
metadata and a digest of their content (:func:`content_digest`). The weight files are written after
it, each atomically. A kill at any instant therefore leaves either the previous checkpoint whole (a
kill before ``state.pt`` is replaced) or the new ``state.pt`` with weight files that are at most that
one checkpoint behind it. Those lagging files are exactly the weights ``state.pt`` itself holds (the
model, or its EMA, at its own iteration), so :meth:`RunFiles.resume` finds them by digest and rewrites
them before training goes on; a file that differs from its record and cannot be rebuilt that way was
changed outside srlab, and is an error. The opposite order (weights first) would overwrite the old
best weights before the state that still records them as best is replaced, and a kill in between
would lose them for good.

Digests are taken over the safetensors header with its keys sorted and the tensor data: the bytes
safetensors writes are not the same from one process to the next (it stores the metadata in a hash
map), what they hold is.

Temporary files that a kill leaves (``.*.tmp.*``) are removed by the next atomic write in the folder
(:mod:`srlab.fileio`).

Bad files
---------
A ``state.pt`` or ``config.yaml`` that is truncated, hand-edited or not srlab's gives one
:class:`~srlab.errors.SrlabError` naming the file and the fix, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import atomic_path, atomic_write_bytes
from srlab.models.weights import PART_KEY, weights_bytes
from srlab.train.config import TrainConfig, apply_overrides, to_dict
from srlab.train.state import RunState

STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"

# The weight files survive a bad state.pt or config.yaml: a new run can start from them.
_RESTORE = "restore it from a backup, or start a new run (another --out) with --init_from its best.safetensors"


def save_config(config: TrainConfig, run_dir: Path) -> None:
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        tmp.write_text(yaml.safe_dump(_plain(to_dict(config)), sort_keys=False))


def _plain(value: Any) -> Any:
    """YAML-safe copy: tuples become lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run_config(run_dir: Path) -> TrainConfig:
    """The configuration saved in a run directory (to resume it)."""
    path = run_dir / CONFIG_FILE
    if not (run_dir / STATE_FILE).is_file() or not path.is_file():
        raise SrlabError(f"nothing to resume in '{run_dir}': it has no {STATE_FILE} and {CONFIG_FILE} (drop --resume)")
    try:
        saved = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SrlabError(f"the run's '{path}' is not valid YAML ({problem}): fix it, or {_RESTORE}") from None
    if not isinstance(saved, dict):
        raise SrlabError(f"the run's '{path}' does not hold a mapping of config keys: {_RESTORE}")
    config = TrainConfig()
    try:
        apply_overrides(config, _migrated(saved))
    except SrlabError as e:
        raise SrlabError(f"the run's '{path}': {e}: fix it, or {_RESTORE}") from None
    return config


def _migrated(saved: dict) -> dict:
    """A config.yaml in an older form, as today's keys: before `losses` replaced `loss`, it names its loss as
    `loss: NAME`; before `unpaired.degrader` existed (2026-12-06), its F was the network one and its LR
    discriminator saw the whole image (today's defaults are the classical F and the high pass)."""
    saved = dict(saved)
    if "loss" in saved:
        name = saved.pop("loss")
        if not saved.get("losses"):
            saved["losses"] = [{"name": name, "weight": 1.0}]
    unpaired = saved.get("unpaired")
    if isinstance(unpaired, dict) and "degrader_channels" in unpaired and "degrader" not in unpaired:
        saved["unpaired"] = {**unpaired, "degrader": "network", "lr_discriminator_input": "image"}
    return saved


def check_resumable(config: TrainConfig, run_dir: Path) -> None:
    """A resumed run keeps its architecture and scale: its weights fit no other."""
    saved = run_config(run_dir)
    for key, old, new in (
        ("scale", saved.scale, config.scale),
        ("model.name", saved.model.name, config.model.name),
        ("model.args", saved.model.args, config.model.args),
        # The optimiser's saved moments are those of the trainable parameters.
        ("model.freeze", saved.model.freeze, config.model.freeze),
        ("data.color_space", saved.data.color_space, config.data.color_space),
        ("unpaired.degrader", saved.unpaired.degrader, config.unpaired.degrader),  # F's saved weights
    ):
        if old != new:
            raise SrlabError(
                f"cannot resume '{run_dir}' with {key} {new!r}: the run was trained with {key} {old!r} "
                "(drop that setting, or start a new run with another --out)"
            )


def load_state(run_dir: Path, device: torch.device) -> dict:
    """``state.pt``, checked to be a checkpoint of srlab's form."""
    path = run_dir / STATE_FILE
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (PermissionError, FileNotFoundError, IsADirectoryError):  # the file system's word, not the file's
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many types for a truncated or foreign file
        if "Unsupported global" in str(e):
            raise SrlabError(
                f"'{path}' holds pickled Python objects, which srlab does not execute: {_RESTORE}"
            ) from None
        raise SrlabError(f"'{path}' is not a readable checkpoint (truncated or corrupt): {_RESTORE}") from None
    problem = _state_problem(state)
    if problem:
        raise SrlabError(f"'{path}' is not a checkpoint of an srlab run ({problem}): {_RESTORE}")
    return state


# Every key RunState.state writes -> the types its value may have (None: the key may be None).
_STATE_TYPES: dict[str, tuple] = {
    "model": (Mapping,), "optimizer": (Mapping,), "ema": (Mapping, None), "epoch": (int,),
    "batches_in_epoch": (int,), "iteration": (int,), "best_psnr": (float, int), "best_epoch": (int,),
    "last_psnr": (float, int), "last_ssim": (float, int), "validated_at": (int,), "stage": (int,),
    "rng": (list, None), "head": (Mapping, None), "estimator": (Mapping, None), "discriminators": (Mapping,),
    "d_optimizer": (Mapping, None), "scaler": (Mapping, None), "schedule_epochs": (int,), "exports": (Mapping,),
    "step_modules": (Mapping, None),
}
# Keys that runs saved by earlier versions of srlab lack.
_OPTIONAL = {"rng", "stage", "head", "estimator", "discriminators", "d_optimizer", "scaler", "schedule_epochs",
             "exports", "step_modules"}


def _state_problem(state: Any) -> str | None:
    """What makes ``state`` unusable, or None."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a mapping"
    for key, types in _STATE_TYPES.items():
        if key not in state:
            if key in _OPTIONAL:
                continue
            return f"no {key!r}"
        value = state[key]
        allowed = tuple(t for t in types if t is not None)
        if (value is None and None in types) or (isinstance(value, allowed) and not isinstance(value, bool)):
            continue
        return f"{key!r} is a {type(value).__name__}"
    for key in ("epoch", "batches_in_epoch", "iteration", "best_epoch", "stage"):
        if state.get(key, 0) < 0:
            return f"{key!r} is negative"
    if state.get("rng") == []:
        return "'rng' is empty"
    if not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        return "'model' holds values that are not tensors"
    for name, record in state.get("exports", {}).items():
        if export_part(name) is None or not _is_record(record):
            return f"a bad record of the weight file {name!r}"
    return None


def export_file(name: str, part: str) -> str:
    """The file of ``part`` (``""``: the model; else an exported network of the step) of export ``name``
    (``last.safetensors`` or ``best.safetensors``)."""
    return name if not part else name.replace(".safetensors", f".{part}.safetensors")


def export_part(file: Any) -> str | None:
    """The part a weight file of the run holds (:func:`export_file`), or None if it is none of them."""
    if not isinstance(file, str) or not file.endswith(".safetensors"):
        return None
    base, _, part = file.removesuffix(".safetensors").partition(".")
    return part if f"{base}.safetensors" in (LAST_FILE, BEST_FILE) and "." not in part else None


def _is_record(record: Any) -> bool:
    return (
        isinstance(record, Mapping) and isinstance(record.get("digest"), str)
        and isinstance(record.get("iteration"), int) and isinstance(record.get("metadata"), Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in record["metadata"].items())
    )


def restore(run: RunState, state: dict, run_dir: Path) -> None:
    """``run.restore(state)``; a state whose tensors do not fit the run's modules is an error naming the file."""
    try:
        run.restore(state)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        problem = " ".join(str(e).split())[:200]
        raise SrlabError(
            f"'{run_dir / STATE_FILE}' does not fit this run ({type(e).__name__}: {problem}): {_RESTORE}"
        ) from None


def content_digest(data: bytes) -> str | None:
    """SHA-256 of a safetensors file's content (header with sorted keys, then the data); None if it is not one."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + length])
    except (struct.error, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(data[8 + length:])
    return digest.hexdigest()


class RunFiles:
    """Writes a run directory's checkpoints in the order above, and checks its weight files on resume."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # What state.pt records of last / best: {name: {"digest", "iteration", "metadata"}}.
        self.exports: dict[str, dict] = {}

    def write(self, state: dict, parts: Mapping[str, nn.Module], exports: tuple[str, ...],
              metadata: dict[str, str]) -> None:
        """Commit ``state`` (recording ``exports``, each of ``parts`` (:meth:`RunState.exported`) with
        ``metadata``), then write those files."""
        records, files = dict(self.exports), {}
        if exports:
            for part, module in parts.items():
                # A step's network names itself, so that reading it as a model is a clear refusal.
                part_metadata = {**metadata, PART_KEY: part} if part else dict(metadata)
                data = weights_bytes(module, metadata=part_metadata)
                record = {"digest": content_digest(data), "iteration": state["iteration"], "metadata": part_metadata}
                for name in exports:
                    files[export_file(name, part)] = data
                    records[export_file(name, part)] = record
        with atomic_path(self.run_dir / STATE_FILE) as tmp:
            torch.save({**state, "exports": records}, tmp)
        self.exports = records
        for name, data in files.items():
            atomic_write_bytes(self.run_dir / name, data)

    def resume(self, state: dict, parts: Mapping[str, nn.Module]) -> list[str]:
        """Take the records of ``state`` (restored into ``parts``, :meth:`RunState.exported`) and rewrite the
        weight files a kill left behind them; returns their names."""
        self.exports = {name: dict(record) for name, record in state.get("exports", {}).items()}
        rewritten = []
        for name, record in self.exports.items():
            path = self.run_dir / name
            if path.is_file() and content_digest(path.read_bytes()) == record["digest"]:
                continue
            part = parts.get(export_part(name))
            data = b"" if part is None else weights_bytes(part, metadata=record["metadata"])
            if record["iteration"] != state["iteration"] or content_digest(data) != record["digest"]:
                raise SrlabError(
                    f"'{path}' does not hold the weights of iteration {record['iteration']} that "
                    f"{STATE_FILE} records for it, and they cannot be rebuilt (it was changed outside srlab): "
                    f"{_RESTORE}"
                )
            atomic_write_bytes(path, data)
            rewritten.append(name)
        return rewritten


def export_metadata(run: RunState) -> dict[str, str]:
    """The metadata of the weight files written at a validation."""
    return {
        "srlab.epoch": str(run.epoch), "srlab.iteration": str(run.iteration),
        "srlab.val_psnr_y": f"{run.last_scores['psnr_y']:.4f}",
    }
