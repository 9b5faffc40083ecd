"""A model that works in another colour space (``data.color_space``, :mod:`srlab.data.color_spaces`).

:func:`in_color_space` wraps a built model: the wrapper converts its RGB input to the space's
coordinates, runs the model on them and converts the model's output back to RGB, so the one inference
path (padding, tiling, cropping) and every command see an RGB -> RGB model as before. The network is
trained in the space: its input and output are the space's coordinates (the loss stays on the RGB
output, see below).

Checkpoints: the wrapper's spec is the model's with ``color_space`` added to its hyper-parameters, so
the weight file records it and :func:`srlab.models.registry.build_model` (hence ``create_model``,
``srlab eval`` and ``srlab upscale --checkpoint``) rebuilds the same wrapper. Its state dict holds the
model's tensors under ``net.`` and the learned transform's under ``space.`` (``space.matrix``,
``space.bias``). ``rgb`` is no wrapper at all: the bare model, its checkpoints unchanged.

``y``: the network predicts Y only and Cb, Cr are upscaled by MATLAB bicubic. srlab's models take three
channels, so Y is fed replicated to all three and the prediction is the mean of the three output
channels: any 3-channel model works unchanged (no 1-channel variant needed). The cost: the network
computes as much as in RGB (only the first and last convolutions depend on the channel count, and they
are a small share of the work), so ``y`` saves no compute here; a 1-channel model would save that small
share.

The loss is computed on the RGB output, against the RGB HR patch, for every space: the objective is
then the same in every space (a fair comparison: only the network's coordinates change), no shared
training code changes, and the learned space needs it (a loss in learned coordinates could shrink by
shrinking the matrix).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from srlab.data.color_spaces import ColorTransform, check_color_space, color_transform
from srlab.data.resize import imresize
from srlab.models.registry import spec_of

if TYPE_CHECKING:
    from srlab.train.config import TrainConfig

COLOR_SPACE_ARG = "color_space"
# How far MATLAB bicubic (4 taps) reaches, in LR pixels: the chroma of `y` looks that far.
_BICUBIC_REACH = 2


class ColorSpaceModel(nn.Module):
    """``net`` working in the coordinates of ``space``; RGB in, RGB out."""

    def __init__(self, net: nn.Module, space: ColorTransform) -> None:
        super().__init__()
        self.net = net
        self.space = space
        self.scale = getattr(net, "scale", spec_of(net).scale)

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        coords = self.space.to_space(x)
        if len(self.space.predicted) == 3:
            return self.space.to_rgb(self.net(coords, *args, **kwargs))
        # One predicted coordinate (Y): fed as three equal channels, read as the mean of the three outputs.
        (index,) = self.space.predicted
        luma = coords[:, index : index + 1]
        predicted = self.net(luma.expand(-1, 3, -1, -1), *args, **kwargs).mean(dim=1, keepdim=True)
        rest = [c for c in range(3) if c != index]
        upscaled = imresize(coords[:, rest], size=tuple(predicted.shape[-2:]))
        channels = list(upscaled.unbind(dim=1))
        channels.insert(index, predicted[:, 0])
        return self.space.to_rgb(torch.stack(channels, dim=1))


def in_color_space(model: nn.Module, color_space: str) -> nn.Module:
    """``model`` working in ``color_space``: the model itself for ``rgb``, else a :class:`ColorSpaceModel`
    whose spec records the space."""
    check_color_space(color_space, key=COLOR_SPACE_ARG)
    if color_space == "rgb":
        return model
    wrapper = ColorSpaceModel(model, color_transform(color_space))
    spec = spec_of(model)
    info = spec.info
    if len(wrapper.space.predicted) < 3:
        multiple = info.size_multiple
        radius = -(-max(info.receptive_radius, _BICUBIC_REACH) // multiple) * multiple
        info = dataclasses.replace(info, receptive_radius=radius)
    wrapper.srlab_spec = dataclasses.replace(spec, args={**spec.args, COLOR_SPACE_ARG: color_space}, info=info)
    return wrapper


def model_args(config: TrainConfig) -> dict[str, Any]:
    """The hyper-parameters a training run builds its model with: ``model.args``, plus the colour space
    when it is not RGB (so that RGB runs record exactly what they recorded before)."""
    space = config.data.color_space
    return dict(config.model.args) if space == "rgb" else {**config.model.args, COLOR_SPACE_ARG: space}
