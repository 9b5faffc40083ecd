"""Training configuration: dataclasses with defaults in code; YAML files and ``--set`` hold overrides.

Unknown keys are errors (a typo never passes silently). The scale is stated once, at the top level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from srlab.errors import SrlabError


@dataclass
class DataConfig:
    train_dir: str = ""
    val_dir: str = ""
    # HR patch side; must be divisible by the scale.
    patch_size: int = 128
    batch_size: int = 16
    # Each training image is visited `repeat` times per epoch (DIV2K-style enlargement of small sets).
    repeat: int = 1
    num_workers: int = 0
    # Validate on at most this many images (0: all).
    val_max_images: int = 0


@dataclass
class ModelConfig:
    name: str = "rdsr"
    # Overrides of the variant's hyper-parameters, e.g. {channels: 64}.
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    # Clip the gradient norm to this (0: off).
    grad_clip: float = 0.0


@dataclass
class ScheduleConfig:
    # cosine: from lr down to lr*min_lr_ratio over the whole run; step: multiply by gamma every
    # step_epochs epochs (independent of the run length); constant.
    kind: str = "cosine"
    min_lr_ratio: float = 0.01
    step_epochs: int = 200
    gamma: float = 0.5
    warmup_iters: int = 0
    # The cosine spans this many epochs (0: the run's `epochs`). Set it to the final length when a run is
    # trained in parts (`--epochs 100` now, `--epochs 300 --resume` later) so that the parts follow one
    # curve and end with the weights of a single 300-epoch run; with 0 the curve is re-stretched to the
    # new `epochs` on resume.
    total_epochs: int = 0


@dataclass
class TrainConfig:
    scale: int = 2
    epochs: int = 100
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: str = "l1"
    # Exponential moving average of the weights (0: off); the EMA weights are validated and saved.
    ema_decay: float = 0.0
    # Warm start: initialise from these weights wherever key and shape match (e.g. x2 weights for an
    # x4 model: everything but the upsampler). Ignored when resuming.
    init_from: str = ""
    # Validate (and checkpoint) every this many epochs; or every val_every_iters iterations if > 0.
    val_every: int = 1
    val_every_iters: int = 0
    # Also save the resume state (state.pt, no validation) every this many iterations (0: only when
    # validating): bounds what a crash or a killed job loses.
    checkpoint_every_iters: int = 0
    seed: int = 0
    # Reproducible to the bit on the same hardware and software: deterministic kernels
    # (torch.use_deterministic_algorithms), no cuDNN autotuning, every RNG seeded. Slower on CUDA.
    deterministic: bool = False
    device: str = "auto"
    out: str = "runs/train"


_SCHEDULES = ("cosine", "step", "constant")
_LOSSES = ("l1", "l2", "charbonnier")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise SrlabError(f"config key '{key}' must be a mapping, got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # PyYAML (YAML 1.1) reads "1e-3" as a string: accept what float() accepts.
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise SrlabError(f"config key '{key}' must be {hint.__name__}, got {value!r}")
        return value
    if origin is tuple:
        wanted = f"config key '{key}' must be a list of {len(hint.__args__)} numbers, got {value!r}"
        if not isinstance(value, (list, tuple)) or len(value) != len(hint.__args__):
            raise SrlabError(wanted)
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise SrlabError(wanted) from None
    if origin is dict:
        if not isinstance(value, dict):
            raise SrlabError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    return value


def apply_overrides(config: Any, overrides: dict[str, Any], prefix: str = "") -> None:
    """Merge a nested mapping into a config dataclass in place; unknown keys are errors."""
    hints = get_type_hints(type(config))
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in hints:
            known = ", ".join(f"{prefix}{k}" for k in hints)
            raise SrlabError(f"unknown config key '{path}': known keys are {known}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            apply_overrides(getattr(config, key), _coerce(value, hint, path), prefix=f"{path}.")
        elif getattr(hint, "__origin__", None) is dict:
            # Mappings merge: `--set model.args.channels=64` keeps the run's other hyper-parameters.
            setattr(config, key, {**getattr(config, key), **_coerce(value, hint, path)})
        else:
            setattr(config, key, _coerce(value, hint, path))


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.args.channels=64"]`` -> nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise SrlabError(f"--set expects key=value, got {item!r} (e.g. --set optim.lr=1e-3)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        parts = key.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SrlabError(f"config file '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SrlabError(f"config file '{path}' must hold a mapping of keys to values")
    return data


def validate(config: TrainConfig) -> None:
    """Reject settings that would crash or silently do nothing, naming the key to change."""
    positive = {
        "--scale": config.scale, "--epochs": config.epochs, "--batch_size": config.data.batch_size,
        "--patch_size": config.data.patch_size, "data.repeat": config.data.repeat,
        "val_every": config.val_every, "schedule.step_epochs": config.schedule.step_epochs,
    }
    for key, value in positive.items():
        if value < 1:
            raise SrlabError(f"{key} must be >= 1, got {value}")
    non_negative = {
        "data.num_workers": config.data.num_workers, "data.val_max_images": config.data.val_max_images,
        "val_every_iters": config.val_every_iters, "schedule.warmup_iters": config.schedule.warmup_iters,
        "checkpoint_every_iters": config.checkpoint_every_iters, "schedule.total_epochs": config.schedule.total_epochs,
        "optim.weight_decay": config.optim.weight_decay, "optim.grad_clip": config.optim.grad_clip,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise SrlabError(f"{key} must be >= 0, got {value}")
    if 0 < config.schedule.total_epochs < config.epochs:
        raise SrlabError(
            f"schedule.total_epochs {config.schedule.total_epochs} is shorter than --epochs {config.epochs}: "
            f"set it to at least {config.epochs}, or to 0 to make the schedule span --epochs"
        )
    if not config.optim.lr > 0:
        raise SrlabError(f"the learning rate (--lr, optim.lr) must be > 0, got {config.optim.lr}")
    if config.data.patch_size % config.scale:
        raise SrlabError(
            f"--patch_size {config.data.patch_size} is not divisible by the scale {config.scale}: "
            f"use a multiple of {config.scale}"
        )
    if not config.data.train_dir:
        raise SrlabError("no training data: pass --train_dir DIR")
    if not config.data.val_dir:
        raise SrlabError("no validation data: pass --val_dir DIR")
    if config.schedule.kind not in _SCHEDULES:
        raise SrlabError(f"unknown schedule {config.schedule.kind!r}: use one of {', '.join(_SCHEDULES)}")
    if config.loss not in _LOSSES:
        raise SrlabError(f"unknown loss {config.loss!r}: use one of {', '.join(_LOSSES)}")
    if not 0.0 <= config.ema_decay < 1.0:
        raise SrlabError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
