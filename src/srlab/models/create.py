"""``srlab.create_model``: the one way to get a model, fresh, with bundled weights, or from a checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from srlab.errors import SrlabError
from srlab.models import official
from srlab.models.detect import detect_model
from srlab.models.color_space import build_in_color_space
from srlab.models.registry import model_entry, with_scale
from srlab.models.reparam import deploy, has_deploy_form
from srlab.models.weights import fits, load_state_dict_strict, read_checkpoint


# The model that `srlab upscale`, `eval` and `demo` use when none is named (bundled weights: x2/x3/x4).
# ETDS-L (the authors' weights): measured against the other bundled models (README, "Which model is the
# default"), it is faster on the CPU than srlab's rdsr_s and 1.2 dB better on Set5 x4; BSRN gains 0.6 dB
# more at about 5x its time.
DEFAULT_MODEL = "etds_l"


def bundled_weights(name: str, scale: int) -> Path | None:
    """The weights shipped inside the package for (model, scale), if any."""
    path = resources.files("srlab") / "weights" / f"{name}_x{scale}.safetensors"
    return Path(str(path)) if path.is_file() else None


def list_bundled() -> list[tuple[str, int]]:
    folder = resources.files("srlab") / "weights"
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        stem = entry.name.removesuffix(".safetensors")
        if entry.name.endswith(".safetensors") and "_x" in stem:
            name, _, scale = stem.rpartition("_x")
            found.append((name, int(scale)))
    return sorted(found)


def create_model(
    name: str | None = None,
    *,
    scale: int | None = None,
    checkpoint: str | Path | None = None,
    pretrained: bool | str = False,
    args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build a registered model; with weights (``checkpoint``, ``pretrained=True`` for the weights
    bundled with srlab, or ``pretrained="official"`` for the authors' release, from the cache
    ``$SRLAB_HOME/weights``, downloaded and checked when absent: ``srlab.models.official``) it is loaded
    strictly and returned in eval mode.

    A re-parameterisable model comes back in the form its checkpoint holds: the training form, or the
    fused inference form (``srlab.models.deploy``) for weights released that way.

    A checkpoint written by srlab records its model, hyper-parameters and scale, so ``name`` and
    ``scale`` may be left out; if given they must agree with it. For other checkpoints (official
    releases) what is left out is detected from the tensors' names and shapes (srlab.models.detect).
    """
    if pretrained is not False:
        checkpoint = _pretrained_weights(name, scale, pretrained, checkpoint, args)
    if checkpoint is None:
        if name is None or scale is None:
            raise SrlabError("create_model needs a model name and a scale (or a checkpoint written by srlab)")
        return build_in_color_space(name, scale=scale, args=args)

    ckpt = read_checkpoint(checkpoint)
    requested, rescale = scale, False
    if ckpt.model is not None:
        if name is not None and name != ckpt.model:
            raise SrlabError(
                f"checkpoint '{ckpt.path}' holds model {ckpt.model!r} x{ckpt.scale}, not {name!r}: "
                f"pass --model {ckpt.model} or leave --model out"
            )
        rescale = scale is not None and scale != ckpt.scale and model_entry(ckpt.model).info.arbitrary_scale
        if scale is not None and scale != ckpt.scale and not rescale:
            raise SrlabError(
                f"checkpoint '{ckpt.path}' was trained for scale x{ckpt.scale}, not x{scale}: "
                f"pass --scale {ckpt.scale} or leave --scale out"
            )
        name, scale = ckpt.model, ckpt.scale
        args = {**ckpt.args, **(args or {})}
    elif name is None or scale is None:  # an official release: its tensors' names and shapes tell the model
        found = detect_model(ckpt, name=name, scale=scale, args=args)
        name, scale, args = found.name, found.scale, found.args
    try:
        model = build_in_color_space(name, scale=scale, args=args)
    except SrlabError as e:
        if ckpt.model is None:  # built from the caller's name, scale and args: the message names them
            raise
        raise SrlabError(f"checkpoint '{ckpt.path}': {e}") from None
    # Re-parameterisable models load weights of either form: srlab's checkpoints say which, official
    # releases of the fused inference form (ETDS, SPAN) are recognised by their tensor names.
    if has_deploy_form(model) and (ckpt.form == "deploy" or (ckpt.model is None and not fits(model, ckpt))):
        fused = deploy(model)
        if ckpt.form == "deploy" or fits(fused, ckpt):
            model = fused
    load_state_dict_strict(model, ckpt)
    if rescale:  # an arbitrary-scale model renders at any scale, whatever the one it was saved at
        with_scale(model, requested)
    return model.eval()


def _pretrained_weights(
    name: str | None, scale: int | None, pretrained: bool | str, checkpoint: object, args: Mapping[str, Any] | None
) -> Path:
    """The file ``pretrained`` names: srlab's bundled weights (True) or the official release ("official")."""
    if pretrained not in (True, "official"):
        raise SrlabError(
            f"pretrained={pretrained!r}: use True (srlab's bundled weights) or 'official' (the authors' release)"
        )
    if checkpoint is not None:
        raise SrlabError(f"give either pretrained={pretrained!r} or a checkpoint, not both")
    if name is None or scale is None:
        raise SrlabError(f"pretrained={pretrained!r} needs a model name and a scale")
    if pretrained == "official":
        return official.fetch(official.find(name, scale, args))
    path = bundled_weights(name, scale)
    if path is None:
        available = ", ".join(f"{n} x{s}" for n, s in list_bundled()) or "none"
        raise SrlabError(
            f"srlab bundles no weights for {name!r} x{scale} (bundled: {available}): "
            f"pass --checkpoint FILE with weights from `srlab train` or an official release"
            + _release_hint(name, scale)
        )
    return path


def _release_hint(name: str, scale: int, checkpoint_flag: str | None = None) -> str:
    """How to get the authors' release of (name, scale) when srlab's registry knows one, else "": download
    it, then load it with ``checkpoint_flag`` (its FILE spelled out) or, without one, pretrained='official'."""
    released = [e for e in official.entries() if e.model == name and e.scale == scale]
    if not released:
        return ""
    then = checkpoint_flag.replace("FILE", str(official.cache_path(released[0]))) if checkpoint_flag else (
        "pretrained='official'")
    return f"; or the authors' release: `srlab weights download {released[0].key}`, then {then}"


# Where weights come from, as model_with_weights reports it (a checkpoint is reported by its path).
BUNDLED, NO_PARAMETERS, RANDOM_INIT = "bundled", "none (no parameters)", "random initialisation"


def model_with_weights(
    name: str | None = None,
    *,
    scale: int | None = None,
    checkpoint: str | Path | None = None,
    args: Mapping[str, Any] | None = None,
    fresh: bool = False,
    checkpoint_flag: str = "--checkpoint FILE",
    args_flag: str = "--model_arg",
) -> tuple[nn.Module, str]:
    """The one policy for which weights a model uses, shared by every command.

    1. A ``checkpoint`` given: its weights (``name`` and ``scale`` may come from it).
    2. Otherwise srlab's bundled weights for (``name``, default :data:`DEFAULT_MODEL`; ``scale``), if
       ``args`` leave the hyper-parameters at the defaults those weights were trained with.
    3. Otherwise no weights: none are needed by a model without parameters (bicubic); a network is
       freshly initialised where ``fresh`` allows it (profiling: the numbers do not depend on the
       weights), and is an :class:`SrlabError` naming the fix elsewhere.

    ``checkpoint_flag`` and ``args_flag`` spell the flags in that error the way the calling command takes
    them. Returns (model in eval mode, where its weights come from: the checkpoint's path,
    :data:`BUNDLED`, :data:`NO_PARAMETERS` or :data:`RANDOM_INIT`).
    """
    args = dict(args or {})
    if checkpoint is not None:
        return create_model(name, scale=scale, checkpoint=checkpoint, args=args), str(checkpoint)
    name = name or DEFAULT_MODEL
    if scale is None:
        raise SrlabError(f"no scale given: pass --scale S (or {checkpoint_flag} with weights that record it)")
    model = create_model(name, scale=scale, args=args)  # checks the name, the scale and the args
    defaults = model_entry(name).defaults()
    at_defaults = all(key in defaults and value == defaults[key] for key, value in args.items())
    if bundled_weights(name, scale) is not None and at_defaults:
        return create_model(name, scale=scale, pretrained=True), BUNDLED
    if next(model.parameters(), None) is None:
        return model.eval(), NO_PARAMETERS
    if fresh:
        return model.eval(), RANDOM_INIT
    if bundled_weights(name, scale) is not None:
        raise SrlabError(
            f"srlab's bundled {name} x{scale} weights are for its default hyper-parameters: drop {args_flag} "
            f"or pass {checkpoint_flag} with weights for them"
        )
    bundled = ", ".join(f"{n} x{s}" for n, s in list_bundled()) or "none"
    raise SrlabError(
        f"model {name!r} x{scale} has no weights (srlab bundles: {bundled}): pass {checkpoint_flag} "
        "with weights from `srlab train` or an official release"
        + _release_hint(name, scale, checkpoint_flag)
    )
