"""``srlab.create_model``: the one way to get a model, fresh, with bundled weights, or from a checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from srlab.errors import SrlabError
from srlab.models.registry import build_model
from srlab.models.reparam import deploy, has_deploy_form
from srlab.models.weights import fits, load_state_dict_strict, read_checkpoint


# The model that `srlab upscale`, `eval` and `demo` use when none is named (bundled weights: x2/x3/x4).
DEFAULT_MODEL = "rdsr_s"


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
    pretrained: bool = False,
    args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build a registered model; with weights (``checkpoint``, or ``pretrained=True`` for the weights
    bundled with srlab) it is loaded strictly and returned in eval mode.

    A re-parameterisable model comes back in the form its checkpoint holds: the training form, or the
    fused inference form (``srlab.models.deploy``) for weights released that way.

    A checkpoint written by srlab records its model, hyper-parameters and scale, so ``name`` and
    ``scale`` may be left out; if given they must agree with it.
    """
    if pretrained:
        if checkpoint is not None:
            raise SrlabError("give either pretrained=True (bundled weights) or a checkpoint, not both")
        if name is None or scale is None:
            raise SrlabError("pretrained=True needs a model name and a scale")
        checkpoint = bundled_weights(name, scale)
        if checkpoint is None:
            available = ", ".join(f"{n} x{s}" for n, s in list_bundled()) or "none"
            raise SrlabError(
                f"srlab bundles no weights for {name!r} x{scale} (bundled: {available}): "
                "pass --checkpoint FILE with weights from `srlab train` or an official release"
            )
    if checkpoint is None:
        if name is None or scale is None:
            raise SrlabError("create_model needs a model name and a scale (or a checkpoint written by srlab)")
        return build_model(name, scale=scale, args=args)

    ckpt = read_checkpoint(checkpoint)
    if ckpt.model is not None:
        if name is not None and name != ckpt.model:
            raise SrlabError(
                f"checkpoint '{ckpt.path}' holds model {ckpt.model!r} x{ckpt.scale}, not {name!r}: "
                f"pass --model {ckpt.model} or leave --model out"
            )
        if scale is not None and scale != ckpt.scale:
            raise SrlabError(
                f"checkpoint '{ckpt.path}' was trained for scale x{ckpt.scale}, not x{scale}: "
                f"pass --scale {ckpt.scale} or leave --scale out"
            )
        name, scale = ckpt.model, ckpt.scale
        args = {**ckpt.args, **(args or {})}
    elif name is None or scale is None:
        raise SrlabError(
            f"checkpoint '{ckpt.path}' does not record its model: pass --model NAME and --scale S"
        )
    model = build_model(name, scale=scale, args=args)
    # Re-parameterisable models load weights of either form: srlab's checkpoints say which, official
    # releases of the fused inference form (ETDS, SPAN) are recognised by their tensor names.
    if has_deploy_form(model) and (ckpt.form == "deploy" or (ckpt.model is None and not fits(model, ckpt))):
        fused = deploy(model)
        if ckpt.form == "deploy" or fits(fused, ckpt):
            model = fused
    load_state_dict_strict(model, ckpt)
    return model.eval()
