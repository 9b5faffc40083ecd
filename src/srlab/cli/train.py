"""``srlab train``: train a model on a folder of HR images (or a DIV2K / benchmark layout).

Settings come, in increasing precedence, from the defaults in ``TrainConfig``, the run directory's
saved config (with ``--resume``), ``--config FILE.yaml``, the flags below, and ``--set key=value``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from srlab.cli.common import flag, parse_model_args, positive_float, positive_int
from srlab.errors import SrlabError
from srlab.train import distributed
from srlab.train.config import TrainConfig, apply_overrides, load_yaml, parse_set
from srlab.train.checkpoint import run_config
from srlab.train.trainer import train

HELP = ("train a model (Adam; weighted losses incl. GAN, stages, curriculum; validation PSNR/SSIM, "
        "checkpoints, resume; multi-GPU with torchrun)")

# flag -> config key; flags left out keep the config's value.
_FLAG_KEYS = {
    "train_dir": "data.train_dir", "val_dir": "data.val_dir", "unpaired_lr_dir": "data.unpaired_lr_dir", "scale": "scale", "epochs": "epochs",
    "batch_size": "data.batch_size", "patch_size": "data.patch_size", "model": "model.name", "lr": "optim.lr",
    "out": "out", "device": "device", "seed": "seed", "init_from": "init_from", "deterministic": "deterministic",
    "amp": "amp", "compile": "compile", "tensorboard": "logging.tensorboard",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flag(parser, "train_dir", metavar="DIR", help="training HR images (folder, DIV2K or benchmark layout)")
    flag(parser, "val_dir", metavar="DIR", help="validation images")
    flag(parser, "unpaired_lr_dir", metavar="DIR",
         help="LR images of the target domain, unpaired with the HR images: weakly supervised training (step unpaired)")
    flag(parser, "scale", type=int, metavar="S", help="upscaling factor (default 2)")
    flag(parser, "epochs", type=int, metavar="N", help="epochs to train in all (default 100)")
    flag(parser, "batch_size", type=int, metavar="B", help="patches per batch (default 16)")
    flag(parser, "patch_size", type=positive_int, metavar="P", help="HR patch side, divisible by the scale (default 128)")
    flag(parser, "model", metavar="NAME", help="model to train (default rdsr)")
    flag(parser, "model_arg", action="append", default=[], metavar="KEY=VALUE",
         help="a hyper-parameter of the model (model.args), repeatable, e.g. --model_arg upsampler=bicubic")
    flag(parser, "lr", type=positive_float, metavar="LR", help="Adam learning rate (default 5e-4)")
    flag(parser, "out", metavar="RUN_DIR", help="run directory (default runs/<model>_x<scale>)")
    flag(parser, "init_from", metavar="WEIGHTS", help="warm start from these weights where names and shapes match")
    flag(parser, "resume", action="store_true", help="continue the run in --out from its last checkpoint")
    flag(parser, "device", choices=["auto", "cpu", "cuda"], help="default auto")
    flag(parser, "seed", type=int, help="random seed (default 0)")
    flag(parser, "deterministic", action="store_const", const=True,
         help="deterministic kernels, seeded RNGs: bit-identical reruns and resumes on the same hardware")
    flag(parser, "amp", choices=["off", "bf16", "fp16"],
         help="mixed precision of the forward pass (fp16: CUDA only, with a gradient scaler; default off)")
    flag(parser, "compile", action="store_const", const=True, help="torch.compile the model for training")
    flag(parser, "tensorboard", action="store_const", const=True,
         help="also write TensorBoard event files to RUN_DIR/tensorboard (needs `pip install tensorboard`)")
    flag(parser, "config", metavar="FILE.yaml", help="YAML file of config overrides")
    flag(parser, "set", action="append", default=[], metavar="KEY=VALUE", help="override one config key, e.g. optim.lr=1e-3")
    flag(parser, "quiet", action="store_true", help="no progress bar or log echo")


def build_config(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig()
    if args.resume:
        if args.out is None:
            raise SrlabError("--resume needs --out RUN_DIR: the run directory to continue")
        config = run_config(Path(args.out))
    if args.config:
        _apply(config, load_yaml(args.config), f"in --config '{args.config}'")
    for name, key in _FLAG_KEYS.items():
        value = getattr(args, name)
        if value is not None:
            apply_overrides(config, _nest(key, value))
    if args.model_arg:  # merged into model.args, as --set model.args.KEY=VALUE would be
        _apply(config, {"model": {"args": parse_model_args(args.model_arg)}}, "in --model_arg")
    _apply(config, parse_set(args.set), "in --set")
    if args.unpaired_lr_dir is not None and config.step == "supervised":  # the flag names the mode
        config.step = "unpaired"
    if args.out is None and not args.resume and not _out_given(args):
        config.out = f"runs/{config.model.name}_x{config.scale}"
    return config


def _apply(config: TrainConfig, overrides: dict, where: str) -> None:
    """apply_overrides, saying which source held a bad key or value."""
    try:
        apply_overrides(config, overrides)
    except SrlabError as e:
        raise SrlabError(f"{e} ({where})") from None


def _out_given(args: argparse.Namespace) -> bool:
    return any(item.split("=", 1)[0].strip() == "out" for item in args.set) or bool(
        args.config and "out" in load_yaml(args.config)
    )


def _nest(key: str, value) -> dict:
    node: dict = {}
    parts = key.split(".")
    cursor = node
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return node


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    result = train(config, resume=args.resume, progress=not args.quiet)
    if (distributed.environment() or (0,))[0] != 0:  # under torchrun, rank 0 alone reports
        return 0
    print(
        f"done: {result.epochs} epochs, {result.iterations} iterations; "
        f"last val PSNR {result.last_psnr:.2f} dB / SSIM {result.last_ssim:.4f}; "
        f"best {result.best_psnr:.2f} dB (epoch {result.best_epoch}); weights in {result.run_dir}"
    )
    return 0
