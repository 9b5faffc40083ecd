"""``srlab.create_model``: the one way to get a model, fresh or with weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from srlab.errors import SrlabError
from srlab.models.registry import build_model
from srlab.models.weights import load_state_dict_strict, read_checkpoint


def create_model(
    name: str | None = None,
    *,
    scale: int | None = None,
    checkpoint: str | Path | None = None,
    args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build a registered model; with ``checkpoint`` load its weights (strict) and return it in eval mode.

    A checkpoint written by srlab records its model, hyper-parameters and scale, so ``name`` and
    ``scale`` may be left out; if given they must agree with it.
    """
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
    load_state_dict_strict(model, ckpt)
    return model.eval()
