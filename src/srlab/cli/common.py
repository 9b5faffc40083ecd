"""Flags and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

import torch
from torch import nn

from srlab.adaptive import AdaptiveMethod, adaptive_for, list_adaptive
from srlab.data.datasets import PairedFolder, downscaled_pair, load_pair
from srlab.data.io import list_images
from srlab.errors import SrlabError
from srlab.inference.path_cache import PathCache
from srlab.inference.paths import COMPILE_MIN_EAGER_S, PATHS, PRECISIONS, PathModel
from srlab.inference.upscale import resolve_device
from srlab.models.create import DEFAULT_MODEL, model_with_weights
from srlab.models.registry import spec_of
from srlab.models.reparam import deploy


def flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Add ``--snake_case`` with its ``--dashed-spelling`` as an alias."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, dest=name, **kwargs)


def _number(text: str, kind: type, ok, wanted: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):  # `not ok` also refuses nan
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


# argparse types: a bad value is reported as a flag error (one line, exit 2) before any work starts.
def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number")


def open_fraction(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")


def scale_factor(text: str) -> int | float:
    """An upscaling factor: an integer, or a real number >= 1 for arbitrary-scale models (2.5)."""
    wanted = "a number >= 1 (an integer, or e.g. 2.5 for arbitrary-scale models)"
    value = _number(text, float, lambda v: 1 <= v < math.inf, wanted)
    return int(value) if value.is_integer() else value


def add_model_flags(parser: argparse.ArgumentParser, *, tiles: bool = True) -> None:
    """``--model --checkpoint --scale --model_arg --device``, and ``--tile --tile_overlap`` with ``tiles``."""
    flag(parser, "model", metavar="NAME",
         help=f"registered model name (default: the checkpoint's, detected from its tensors for an official .pth; "
              f"without --checkpoint {DEFAULT_MODEL} with its bundled weights)")
    flag(parser, "checkpoint", metavar="FILE", help="weights: .safetensors from `srlab train`, or an official .pth")
    flag(parser, "scale", type=scale_factor, metavar="S",
         help="upscaling factor (default: the checkpoint's, recorded or detected from its tensors); any real >= 1 "
              "for arbitrary-scale models")
    flag(
        parser, "model_arg", action="append", default=[], metavar="KEY=VALUE",
        help="a hyper-parameter of the model, repeatable (e.g. --model_arg channels=32 for ecbsr_etds M4C32)",
    )
    flag(parser, "device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    if not tiles:  # commands whose inference routes whole images
        parser.set_defaults(tile=None, tile_overlap=None)
        return
    flag(parser, "tile", type=positive_int, metavar="T", help="process the LR image in T x T tiles (bounds memory)")
    flag(parser, "tile_overlap", type=non_negative_int, metavar="O", help="tile context in LR pixels (default: the model's)")


def parse_model_args(assignments: list[str]) -> dict[str, Any]:
    """``["channels=32", "num_modules=6"]`` -> {"channels": 32, "num_modules": 6} (values read as YAML)."""
    parsed: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SrlabError(f"--model_arg expects KEY=VALUE, got {item!r} (e.g. --model_arg channels=32)")
        try:
            parsed[key.strip()] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise SrlabError(f"--model_arg {item!r}: {raw!r} is not a valid value") from None
    return parsed


def load_model_from_flags(args: argparse.Namespace) -> tuple[nn.Module, torch.device]:
    device = resolve_device(args.device)
    model, _ = model_with_weights(
        args.model, scale=args.scale, checkpoint=args.checkpoint, args=parse_model_args(args.model_arg)
    )
    # Inference always runs the fused form of re-parameterisable models (identical outputs, faster).
    return deploy(model).to(device).eval(), device


def add_path_flags(parser: argparse.ArgumentParser, *, path: str = "auto", precision: str = "auto") -> None:
    """``--path`` and ``--precision``: how the model runs (srlab.inference.paths), with this command's defaults."""
    flag(parser, "path", default=path, choices=["auto", *PATHS],
         help="inference path: auto (the fastest that matches fp32 eager, measured once per model, input size, "
              f"threads and CPU/GPU and cached in $SRLAB_HOME), or one of {', '.join(PATHS)} (default {path})")
    flag(parser, "precision", default=precision, choices=PRECISIONS,
         help="fp32 keeps --path auto on float32 paths; auto also allows bf16/fp16 where the hardware has native "
              f"units and the model is half-precision safe (default {precision})")
    flag(parser, "compile_from", type=non_negative_float, default=COMPILE_MIN_EAGER_S, metavar="SECONDS",
         help="--path auto tries the compiled paths (compile, bf16_compile) where one eager forward takes this long: "
              "compiling costs seconds to minutes per input size and process; 0 for many inputs of one size "
              f"(default {COMPILE_MIN_EAGER_S:g})")


def add_sampler_flags(parser: argparse.ArgumentParser) -> None:
    """``--steps --seed``: the sampler settings of diffusion models (sr3, resshift); other models refuse them."""
    flag(parser, "steps", type=positive_int, metavar="N",
         help="diffusion models (sr3, resshift): denoiser evaluations per image (default: the model's)")
    flag(parser, "seed", type=non_negative_int, metavar="S",
         help="diffusion models (sr3, resshift): seed of the sampler noise; the output is a pure function of the weights, "
              "the image, --steps and --seed (default: the model's)")


def sampler_from_flags(args: argparse.Namespace, model: nn.Module) -> None:
    """Set ``--steps``/``--seed`` on a diffusion model (one with ``set_sampler``); refuse them for the others."""
    set_sampler = getattr(model, "set_sampler", None)
    if set_sampler is not None:
        set_sampler(steps=args.steps, seed=args.seed)
        return
    given = [f"--{name}" for name in ("steps", "seed") if getattr(args, name) is not None]
    if given:
        raise SrlabError(f"{given[0]}: model {spec_of(model).name!r} is not a diffusion model (e.g. sr3): drop {given[0]}")


def model_on_path(model: nn.Module, args: argparse.Namespace) -> nn.Module:
    """``model`` on the path ``--path``/``--precision`` ask for (eager: the model itself). Diffusion samplers
    stay eager under ``--path auto``: choosing a path would time the whole sampler on every candidate."""
    if args.path == "eager" or next(model.parameters(), None) is None:  # bicubic: nothing to speed up
        return model
    if args.path == "auto" and hasattr(model, "set_sampler"):
        return model
    return PathModel(model, path=args.path, precision=args.precision, cache=PathCache(),
                     compile_from=args.compile_from)


def refuse_path_for_adaptive(args: argparse.Namespace) -> None:
    """Adaptive methods run their own routes in float32: an explicit faster path would be silently ignored."""
    if args.path not in ("auto", "eager"):
        raise SrlabError(f"adaptive inference runs its own float32 path: drop --path {args.path} (or use --adaptive off)")


def finite_float(text: str) -> float:
    return _number(text, float, math.isfinite, "a finite number")


def add_adaptive_flags(parser: argparse.ArgumentParser) -> None:
    flag(parser, "adaptive", metavar="METHOD", choices=[*list_adaptive(), "off"],
         help="content-adaptive inference: the method that runs the model (default: the model's own, for the "
              "adaptive models of `srlab models`; `static` runs any model through the patch engine; `off` runs "
              f"the model's plain forward); one of {', '.join(list_adaptive())}, off")
    flag(parser, "knob", type=finite_float, metavar="VALUE",
         help="the adaptive method's quality/compute knob (ARM eta, PCSR k, CAMixerSR ratio, ...; default: the method's)")


def adaptive_from_flags(args: argparse.Namespace, model: nn.Module) -> AdaptiveMethod | None:
    """The adaptive method ``--adaptive`` / ``--knob`` ask for (or the model's own), None for plain inference."""
    if args.adaptive == "off":
        if args.knob is not None:
            raise SrlabError("--knob needs adaptive inference: drop --adaptive off")
        return None
    method = args.adaptive or spec_of(model).info.adaptive
    if not method and args.knob is None:
        return None
    if not float(spec_of(model).scale).is_integer():  # patches would not map to whole output pixels
        raise SrlabError(f"adaptive inference needs an integer scale, not x{spec_of(model).scale}: drop --adaptive")
    return adaptive_for(model, method=method or None, checkpoint=args.checkpoint, knob=args.knob)


def readable_pairs(
    folder: PairedFolder, scale: float, failures: dict[str, str], *, min_lr_side: int = 1,
    downscales: Sequence[float] = (),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The (LR, HR) pairs of ``folder`` that load, with LR sides of at least ``min_lr_side``; each other goes
    into ``failures`` (name: why), for the command to report in one line each while the others are used.
    After each pair, its HR image downscaled by each of ``downscales`` (:func:`downscaled_pair`), where its LR
    still has ``min_lr_side``."""
    for pair in folder.pairs:
        try:
            lr, hr = load_pair(pair, scale)
        except SrlabError as e:
            failures[pair.name] = str(e)
            continue
        if min(lr.shape[-2:]) < min_lr_side:
            failures[pair.name] = (f"LR {lr.shape[-2]}x{lr.shape[-1]} is smaller than the {min_lr_side}x{min_lr_side} "
                                   "patches the router learns from: give larger images")
            continue
        yield lr, hr
        for factor in downscales:
            small_lr, small_hr = downscaled_pair(hr, factor, scale)
            if min(small_lr.shape[-2:]) >= min_lr_side:
                yield small_lr, small_hr


def images_of(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files of the command's inputs (files, or folders of images)."""
    images: list[Path] = []
    for item in inputs:
        images.extend(list_images(item))
    return images


def results_folder(out: str | Path, what: str = "the results") -> Path:
    """``-o OUT`` made ready: an existing or new folder (a file there is the user's mistake)."""
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise SrlabError(f"-o '{out_dir}' is a file: give a folder for {what}")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def process_each(images: Sequence[Path], process: Callable[[Path], None]) -> int:
    """Run ``process`` on every image; a failure is one error line and the others still run. The exit
    status: 0, or 1 when some image failed (the README's "Exit codes")."""
    failures = 0
    for image in images:
        try:
            process(image)
        except SrlabError as e:
            failures += 1
            print(f"srlab: error: {e}", file=sys.stderr)
    if failures:
        print(f"srlab: {failures} of {len(images)} images failed", file=sys.stderr)
        return 1
    return 0
