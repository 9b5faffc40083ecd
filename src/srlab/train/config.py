"""Training configuration: dataclasses with defaults in code; YAML files and ``--set`` hold overrides.

Unknown keys are errors (a typo never passes silently). The scale is stated once, at the top level.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from srlab.data.degrade import parse_degradation
from srlab.errors import SrlabError
from srlab.losses import LOSS_NAMES, objective_parameters
from srlab.losses.gan import GAN_TYPES
from srlab.models.color_space import check_color_space
from srlab.unsupervised.cycle import DEGRADERS, LR_DISCRIMINATOR_INPUTS


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
    # Validate on LR images made from the validation HR images by the run's `degradation` (each image's δ
    # from the seed and its file name, the LR image `srlab degrade --seed SEED` writes) instead of the
    # folder's clean LR images: validation then measures the restoration the run trains for.
    val_degradation: bool = False
    # Unpaired training (step: unpaired): LR images of the target domain, not paired with train_dir's HR
    # images; LR patches (patch_size / scale) are cropped from them independently of the HR patches.
    unpaired_lr_dir: str = ""
    # The colour space the network works in: rgb, ycbcr, y (Y only, bicubic chroma), lab or learned (a
    # learned 3x3 change of basis); the loss stays on RGB (srlab.models.color_space).
    color_space: str = "rgb"
    # "folders": train_dir and val_dir hold one sub-folder per image category, and batches carry the
    # category (step: multitask; srlab.data.labels). "": no labels.
    labels: str = ""


@dataclass
class ModelConfig:
    name: str = "rdsr"
    # Overrides of the variant's hyper-parameters, e.g. {channels: 64}.
    args: dict[str, Any] = field(default_factory=dict)
    # Parameter-name prefixes kept fixed (no gradient, not in the optimiser; still saved), e.g. [head., body.]
    # to train only rdsr's tail on a warm-started backbone (init_from).
    freeze: list[str] = field(default_factory=list)


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
class LossTerm:
    """One term of the objective: ``weight * loss(name, **params)`` (names: srlab.losses.LOSS_NAMES)."""

    name: str = ""
    weight: float = 1.0
    # The loss's keyword arguments, e.g. {gan_type: ragan} for gan.
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageConfig:
    """A part of the run with its own objective and base learning rate (see srlab.train.stages)."""

    epochs: int = 1
    # Empty: the run's `losses`.
    losses: list[LossTerm] = field(default_factory=list)
    # Base learning rate of the stage (0: optim.lr); the schedule restarts at every stage.
    lr: float = 0.0
    # Shown in the log (default "stage K").
    name: str = ""


@dataclass
class DiscriminatorOptimConfig:
    """Adam of the discriminator(s) of a `gan` loss; its learning rate follows the generator's schedule
    (the same warm-up / cosine / step factor applied to this base rate)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0


@dataclass
class CurriculumConfig:
    """Patch-difficulty curriculum (srlab.train.stages.CurriculumSampler): every epoch draws
    ``len / fraction`` random patches and trains on the easiest ``fraction`` of them; the fraction
    grows linearly from ``start_fraction`` (epoch 1) to 1 (epoch ``epochs + 1`` and later)."""

    # off, gradient (mean squared HR gradient, low = flat = easy) or bicubic (bicubic-upscaling error of
    # the patch, low = easy).
    measure: str = "off"
    start_fraction: float = 0.25
    # Epochs over which the pool widens to every patch.
    epochs: int = 10


@dataclass
class LoggingConfig:
    """What the run records besides ``train.log`` (see srlab.train.tensorboard)."""

    # TensorBoard event files in RUN_DIR/tensorboard (needs `pip install tensorboard`): losses, learning
    # rate, data wait, validation scores and images, the config.
    tensorboard: bool = False
    # Write the training losses and learning rate (means since the last write) every this many iterations.
    every_iters: int = 10
    # Validation images shown (super-resolved at every validation, their HR once).
    val_images: int = 3


@dataclass
class UnpairedConfig:
    """Weakly supervised training from unpaired LR and HR images (``step: unpaired``,
    :mod:`srlab.train.unpaired_step`): the model G (LR -> HR), a degradation network F (HR -> LR) and one
    discriminator per domain. Each weight multiplies one term of G's and F's objective."""

    # |F(G(x)) - x|_1 on the real LR patch x: the study's cycle content loss. Low: on a noisy domain it asks
    # G to keep x's noise (F cannot redraw that noise), which costs PSNR (bench/unpaired_demo.py).
    cycle_weight: float = 0.1
    # The run's `losses` on (G(F(y)), y) for the real HR patch y: G learns from F's degradations.
    pseudo_pair_weight: float = 1.0
    # |G(bicubic(y)) - y|_1 (CinCGAN's identity term; 0: off).
    identity_weight: float = 0.1
    # Adversarial terms of G (HR domain: G(x) vs y) and F (LR domain: F(y) vs x).
    adversarial_hr_weight: float = 0.001
    adversarial_lr_weight: float = 0.05
    # vanilla, lsgan, ragan or hinge (srlab.losses.gan), for both domains.
    gan_type: str = "lsgan"
    discriminator_channels: int = 32
    # What the LR discriminator sees of F(y) and x: their "high_pass" (the image minus its 5x5 box average:
    # noise and blur without the content and colour the unpaired photos differ in), or the "image".
    lr_discriminator_input: str = "high_pass"
    # F: "classical", the study's x = (y * k) downscaled + n with a Gaussian kernel and per-channel noise
    # learned, or "network", bicubic downscaling plus a learned residual from the HR patch and noise maps (its
    # size below). bench/unpaired_demo.py: only the classical F, seen through the high pass, learned the
    # target domain's noise there.
    degrader: str = "classical"
    degrader_channels: int = 32
    degrader_blocks: int = 4


@dataclass
class CarConfig:
    """Joint training of CAR's resampler with the model (``step: car``, :mod:`srlab.train.car_step`): the
    objective is the run's ``losses`` on (model(resampled HR), HR) plus these regularisers of the
    resampler's offsets (Sun & Chen 2020, weights of the MindSpore port's train.py)."""

    tv_weight: float = 0.005
    offset_weight: float = 0.001
    # The resampler's trunk width (256 in the paper; its first stages are 1/4 and 1/2 as wide).
    resampler_channels: int = 256


@dataclass
class MultitaskConfig:
    """SR plus an image-category head on the model's features (``step: multitask``,
    :mod:`srlab.train.multitask_step`): the objective is the run's ``losses`` + ``weight`` * cross-entropy."""

    # 0: the head learns on detached features (a probe: accuracy is measured, the SR network is untouched).
    weight: float = 0.1
    # Width of the head's convolution (then global average pooling and a linear layer).
    head_channels: int = 32
    # The model's module whose INPUT the head reads ("": the model's last top-level module with weights,
    # e.g. rdsr's tail: its fused features before the upsampler).
    features: str = ""


@dataclass
class TrainConfig:
    scale: int = 2
    epochs: int = 100
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # The objective: a weighted sum of loss terms, e.g. [{name: l1, weight: 1.0}, {name: gan, weight: 0.005,
    # params: {gan_type: ragan}}].
    losses: list[LossTerm] = field(default_factory=lambda: [LossTerm(name="l1", weight=1.0)])
    # Stages run in order, each for its epochs with its own losses and base learning rate (empty: one stage).
    stages: list[StageConfig] = field(default_factory=list)
    # The discriminator's optimiser (only used with a gan loss).
    d_optim: DiscriminatorOptimConfig = field(default_factory=DiscriminatorOptimConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    # Training LR patches made on the fly from the HR patches by a degradation D(y; δ) (srlab.data.degrade):
    # {preset: realesrgan} (or bsrgan, bicubic), {steps: [...]} or a list of steps; δ is drawn from (seed,
    # epoch, index), so resumed runs stay bit-exact. Empty: the folder's LR images, or MATLAB bicubic.
    degradation: Any = None
    unpaired: UnpairedConfig = field(default_factory=UnpairedConfig)
    car: CarConfig = field(default_factory=CarConfig)
    multitask: MultitaskConfig = field(default_factory=MultitaskConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # Width of the uncertainty head trained with the udl loss (stage estimate); see srlab.train.stages.
    udl_head_channels: int = 32
    # The kind of training step (srlab.train.step): supervised (one forward of an LR/HR batch), or a kind
    # registered in srlab.train.steps (e.g. ARM's sandwich rule).
    step: str = "supervised"
    # Mixed precision of the model's forward pass: off, bf16 or fp16 (fp16 with a gradient scaler; GPU only).
    amp: str = "off"
    # torch.compile the model for training.
    compile: bool = False
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
_AMP = ("off", "bf16", "fp16")
_MEASURES = ("off", "gradient", "bicubic")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _coerce_list(value: Any, item_type: type, key: str, current: list | None) -> list:
    """A list of mappings makes a new list; a mapping of indices (``--set stages.1.epochs=2``) edits
    the items of the current one."""
    if isinstance(value, (list, tuple)):
        items = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise SrlabError(f"config key '{key}[{i}]' must be a mapping, got {entry!r}")
            item = item_type()
            apply_overrides(item, entry, prefix=f"{key}.{i}.")
            items.append(item)
        return items
    if isinstance(value, dict) and current is not None:
        items = copy.deepcopy(current)
        for index, entry in value.items():
            i = int(index) if isinstance(index, int) or str(index).isdigit() else -1
            if not 0 <= i < len(items):
                raise SrlabError(
                    f"config key '{key}.{index}': {key} has {len(items)} items (indices 0 to {len(items) - 1})"
                )
            if not isinstance(entry, dict):
                raise SrlabError(f"config key '{key}.{index}' must be a mapping, got {entry!r}")
            apply_overrides(items[i], entry, prefix=f"{key}.{i}.")
        return items
    raise SrlabError(f"config key '{key}' must be a list of mappings, got {value!r}")


def _coerce(value: Any, hint: Any, key: str, current: Any = None) -> Any:
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
        if hint is str and isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans
            raise SrlabError(f"config key '{key}' must be str, got {value!r}: YAML reads off, on, no and yes as "
                             f"booleans, so quote the word ({key.rsplit('.', 1)[-1]}: 'off', or --set {key}=\"'off'\")")
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
    if origin is list and dataclasses.is_dataclass(hint.__args__[0]):
        return _coerce_list(value, hint.__args__[0], key, current)
    if origin is list and hint.__args__[0] is str:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise SrlabError(f"config key '{key}' must be a list of non-empty strings, got {value!r}")
        return list(value)
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
        if path == "loss" and isinstance(config, TrainConfig):
            name = value if isinstance(value, str) else "l1"
            raise SrlabError(f"unknown config key 'loss': the objective is a list of terms: "
                             f"use losses: [{{name: {name}, weight: 1.0}}]")
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
            setattr(config, key, _coerce(value, hint, path, getattr(config, key)))


def merge_overrides(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Override mappings layered as applying them in turn would: ``more`` wins, mappings merge at every depth."""
    merged = dict(base)
    for key, value in more.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge_overrides(merged[key], value) if both_mappings else value
    return merged


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.args.channels=64"]`` -> nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise SrlabError(f"--set expects key=value, got {item!r} (e.g. --set optim.lr=1e-3)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as e:
            raise SrlabError(
                f"--set {item!r}: the value is not valid YAML ({str(e).splitlines()[0]}): close its brackets "
                "and quotes, or quote it (e.g. --set 'key=\"text\"')"
            ) from None
        parts = key.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SrlabError(f"--set {item!r}: an earlier --set gave {part!r} a value, not keys: set one of them")
        node[parts[-1]] = value
    return nested


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SrlabError(f"config file '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SrlabError(f"config file '{path}' must hold a mapping of keys to values")
    return data


def _validate_terms(terms: list[LossTerm], where: str) -> None:
    """Names and parameter names checked without building the losses (no weights loaded here)."""
    for i, term in enumerate(terms):
        if term.name not in LOSS_NAMES:
            raise SrlabError(f"{where}.{i}: unknown loss {term.name!r}: use one of {', '.join(LOSS_NAMES)}")
        if term.weight < 0:
            raise SrlabError(f"{where}.{i} ({term.name}): the weight must be >= 0, got {term.weight}")
        unknown = sorted(set(term.params) - set(objective_parameters(term.name)))
        if unknown:
            valid = ", ".join(objective_parameters(term.name)) or "none"
            raise SrlabError(f"{where}.{i}: unknown parameter {unknown[0]!r} for loss {term.name!r}: valid are {valid}")


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
    if not config.losses:
        raise SrlabError("losses is empty: give at least one term, e.g. losses: [{name: l1, weight: 1.0}]")
    _validate_terms(config.losses, "losses")
    for i, stage in enumerate(config.stages):
        if stage.epochs < 1:
            raise SrlabError(f"stages.{i}.epochs must be >= 1, got {stage.epochs}")
        if stage.lr < 0:
            raise SrlabError(f"stages.{i}.lr must be >= 0 (0: optim.lr), got {stage.lr}")
        _validate_terms(stage.losses, f"stages.{i}.losses")
    if config.stages:
        total = sum(stage.epochs for stage in config.stages)
        if config.epochs > total:
            raise SrlabError(
                f"--epochs {config.epochs} is more than the stages' {total} epochs: set epochs to {total} "
                "(or lengthen the last stage)"
            )
        if config.schedule.total_epochs:
            raise SrlabError(
                "schedule.total_epochs does not apply to staged runs (each stage spans its epochs): set it to 0"
            )
    if not config.d_optim.lr > 0:
        raise SrlabError(f"d_optim.lr must be > 0, got {config.d_optim.lr}")
    if config.amp not in _AMP:
        raise SrlabError(f"unknown amp {config.amp!r}: use one of {', '.join(_AMP)}")
    if config.curriculum.measure not in _MEASURES:
        raise SrlabError(f"unknown curriculum.measure {config.curriculum.measure!r}: use one of {', '.join(_MEASURES)}")
    if not 0 < config.curriculum.start_fraction <= 1:
        raise SrlabError(f"curriculum.start_fraction must be in (0, 1], got {config.curriculum.start_fraction}")
    if config.curriculum.epochs < 0:
        raise SrlabError(f"curriculum.epochs must be >= 0, got {config.curriculum.epochs}")
    parse_degradation(config.degradation, config.scale)
    check_color_space(config.data.color_space)
    if config.logging.every_iters < 1:
        raise SrlabError(f"logging.every_iters must be >= 1, got {config.logging.every_iters}")
    if config.logging.val_images < 0:
        raise SrlabError(f"logging.val_images must be >= 0, got {config.logging.val_images}")
    if config.udl_head_channels < 1:
        raise SrlabError(f"udl_head_channels must be >= 1, got {config.udl_head_channels}")
    if not 0.0 <= config.ema_decay < 1.0:
        raise SrlabError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
    _validate_unpaired(config)
    _validate_car(config)
    _validate_multitask(config)


_LABELS = ("", "folders")


def _validate_multitask(config: TrainConfig) -> None:
    if config.data.labels not in _LABELS:
        raise SrlabError(f"unknown data.labels {config.data.labels!r}: use folders (one sub-folder per category) or ''")
    multitask = config.step == "multitask"
    if bool(config.data.labels) != multitask:
        raise SrlabError(
            "step multitask needs image categories: set data.labels: folders (one sub-folder per category)"
            if multitask
            else f"data.labels is only read by step multitask, not by step {config.step}: set step: multitask"
        )
    if not multitask:
        return
    if config.multitask.weight < 0:
        raise SrlabError(f"multitask.weight must be >= 0, got {config.multitask.weight}")
    if config.multitask.head_channels < 1:
        raise SrlabError(f"multitask.head_channels must be >= 1, got {config.multitask.head_channels}")
    if config.compile:  # the head's features come from a hook added around every forward
        raise SrlabError("step multitask reads the model's features with a forward hook, which torch.compile "
                         "would recompile for at every step: set compile false")
    for where, terms in [("losses", config.losses)] + [(f"stages.{i}.losses", st.losses)
                                                        for i, st in enumerate(config.stages)]:
        if any(term.name == "gan" for term in terms):
            raise SrlabError(f"{where}: step multitask trains no discriminator: remove the gan term")


def _validate_car(config: TrainConfig) -> None:
    if config.step != "car":
        return
    car = config.car
    if config.scale not in (2, 4):
        raise SrlabError(f"step car downscales by 2 or 4 (the resampler works at 1/8), not {config.scale}: "
                         "set --scale 2 or 4")
    for key in ("tv_weight", "offset_weight"):
        if getattr(car, key) < 0:
            raise SrlabError(f"car.{key} must be >= 0, got {getattr(car, key)}")
    if car.resampler_channels < 4 or car.resampler_channels % 4:
        raise SrlabError(f"car.resampler_channels must be a positive multiple of 4 (its first stages are 1/4 and "
                         f"1/2 as wide), got {car.resampler_channels}")
    if config.data.patch_size % 8:
        raise SrlabError(f"step car resamples HR patches at 1/8 of their size: set --patch_size to a multiple of 8, "
                         f"got {config.data.patch_size}")
    if config.degradation:
        raise SrlabError("step car makes its LR images with the resampler: remove degradation")
    if config.amp != "off":
        raise SrlabError(f"step car trains in float32: set amp off (got {config.amp})")
    if config.curriculum.measure != "off":
        raise SrlabError("the curriculum ranks bicubic LR/HR patches: set curriculum.measure to off for step car")


def _validate_unpaired(config: TrainConfig) -> None:
    unpaired = config.step == "unpaired"
    if bool(config.data.unpaired_lr_dir) != unpaired:
        raise SrlabError(
            "step unpaired needs the LR images of the target domain: pass --unpaired_lr_dir DIR"
            if unpaired else f"--unpaired_lr_dir is only read by unpaired training, not by step {config.step}: "
            "set step: unpaired"
        )
    if not unpaired:
        return
    u = config.unpaired
    for key in ("cycle_weight", "pseudo_pair_weight", "identity_weight", "adversarial_hr_weight",
                "adversarial_lr_weight"):
        if getattr(u, key) < 0:
            raise SrlabError(f"unpaired.{key} must be >= 0, got {getattr(u, key)}")
    for key in ("discriminator_channels", "degrader_channels", "degrader_blocks"):
        if getattr(u, key) < 1:
            raise SrlabError(f"unpaired.{key} must be >= 1, got {getattr(u, key)}")
    if u.gan_type not in GAN_TYPES:
        raise SrlabError(f"unknown unpaired.gan_type {u.gan_type!r}: use one of {', '.join(GAN_TYPES)}")
    if u.degrader not in DEGRADERS:
        raise SrlabError(f"unknown unpaired.degrader {u.degrader!r}: use one of {', '.join(DEGRADERS)}")
    if u.lr_discriminator_input not in LR_DISCRIMINATOR_INPUTS:
        raise SrlabError(f"unknown unpaired.lr_discriminator_input {u.lr_discriminator_input!r}: use one of "
                         f"{', '.join(LR_DISCRIMINATOR_INPUTS)}")
    if (config.data.patch_size // config.scale) % 8:
        raise SrlabError(
            f"unpaired training discriminates LR patches of side patch_size / scale = "
            f"{config.data.patch_size // config.scale}, which must be divisible by 8: set --patch_size to a "
            f"multiple of {8 * config.scale}"
        )
    for where, terms in [("losses", config.losses)] + [(f"stages.{i}.losses", st.losses)
                                                        for i, st in enumerate(config.stages)]:
        if any(term.name == "gan" for term in terms):
            raise SrlabError(f"{where}: unpaired training has its own adversarial terms (unpaired.adversarial_*"
                             "_weight): remove the gan term")
    if config.curriculum.measure != "off":
        raise SrlabError("the curriculum ranks paired patches: set curriculum.measure to off for unpaired training")
    if config.degradation:
        raise SrlabError("unpaired training reads its LR images from --unpaired_lr_dir: remove degradation")
