"""Colour spaces a network can work in (``data.color_space``, or the hyper-parameter ``color_space`` of
any model): a registry of exact, differentiable, invertible transforms of RGB images in [0, 1], and the
wrapper that makes a model work in one.

Each space is a :class:`ColorTransform` module with ``to_space(rgb)`` and its exact inverse
``to_rgb(coords)`` on (..., 3, H, W) tensors, in the input's floating dtype, defined (and finite, with
finite gradients) for every real input, so a network's out-of-range output still maps back. The
coordinates are scaled to lie in [0, 1] for every RGB colour in [0, 1] (what networks initialised for
RGB images, e.g. rdsr's ``init=bicubic`` with its ReLU after the head, expect):

- ``rgb``: the identity.
- ``ycbcr``: ITU-R BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` on doubles (:mod:`srlab.metrics.color`, the
  conversion the Y-channel metrics use): Y in [16/255, 235/255], Cb and Cr in [16/255, 240/255].
- ``y``: the same coordinates, but only Y is predicted by the network; Cb and Cr are upscaled by MATLAB
  bicubic (``predicted = (0,)``; :mod:`srlab.models.color_space` does that).
- ``lab``: CIE L*a*b* of sRGB (IEC 61966-2-1 gamma, D65 white), scaled as (L/100, a/220 + 1/2,
  b/220 + 1/2) (:mod:`srlab.metrics.lab`): the sRGB gamut has a in [-86.2, 98.3] and b in [-107.9, 94.5].
- ``learned``: ``M @ rgb + c`` with a learnable 3x3 matrix ``M`` (initialised to the identity) and
  bias ``c`` (zero); ``to_rgb`` applies the exact inverse ``M^-1 (x - c)``, so the transform stays a change
  of basis: the network's output is read back in the same coordinates its input was written in. (A
  separately learned output transform would be two free 1x1 layers, i.e. only a slightly larger
  network, and its input and output coordinates would no longer be one space.)

A new space is one :class:`ColorTransform` subclass and one :func:`register_color_space` line.

The wrapper
-----------
:func:`in_color_space` wraps a built model: the wrapper converts its RGB input to the space's
coordinates, runs the model on them and converts the model's output back to RGB, so the one inference
path (padding, tiling, cropping) and every command see an RGB -> RGB model as before. The network is
trained in the space: its input and output are the space's coordinates (the loss stays on the RGB
output, see below).

Checkpoints: the wrapper's spec is the model's with ``color_space`` added to its hyper-parameters, so
the weight file records it and :func:`build_in_color_space` (hence ``create_model``, ``srlab eval`` and
``srlab upscale --checkpoint``) rebuilds the same wrapper. Its state dict holds the
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
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from srlab.data.resize import imresize
from srlab.errors import SrlabError
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.metrics.lab import lab_to_rgb, rgb_to_lab
from srlab.models.registry import build_model, spec_of


class ColorTransform(nn.Module, ABC):
    """RGB in [0, 1] <-> a space's coordinates, on (..., 3, H, W) tensors."""

    # The coordinates the network predicts; the others are upscaled by bicubic interpolation.
    predicted: tuple[int, ...] = (0, 1, 2)

    @abstractmethod
    def to_space(self, rgb: Tensor) -> Tensor: ...

    @abstractmethod
    def to_rgb(self, coords: Tensor) -> Tensor: ...


_SPACES: dict[str, Callable[[], ColorTransform]] = {}


def register_color_space(name: str, factory: Callable[[], ColorTransform]) -> None:
    if name in _SPACES:
        raise ValueError(f"colour space {name!r} is registered twice")
    _SPACES[name] = factory


def color_space_names() -> tuple[str, ...]:
    return tuple(_SPACES)


def check_color_space(name: object, key: str = "data.color_space") -> str:
    """``name`` if it is a registered space, else an :class:`SrlabError` naming ``key`` and the choices."""
    if not isinstance(name, str) or name not in _SPACES:
        raise SrlabError(f"unknown {key} {name!r}: use one of {'|'.join(_SPACES)}")
    return name


def color_transform(name: str) -> ColorTransform:
    """A fresh transform of the space ``name`` (a learned one at its initial value)."""
    return _SPACES[check_color_space(name)]()


class _Rgb(ColorTransform):
    def to_space(self, rgb: Tensor) -> Tensor:
        return rgb

    def to_rgb(self, coords: Tensor) -> Tensor:
        return coords


class _YCbCr(ColorTransform):
    def to_space(self, rgb: Tensor) -> Tensor:
        return rgb_to_ycbcr(rgb)

    def to_rgb(self, coords: Tensor) -> Tensor:
        return ycbcr_to_rgb(coords)


class _LumaOnly(_YCbCr):
    predicted = (0,)


# The scaling of (L, a, b) to [0, 1] coordinates.
_L_RANGE, _AB_RANGE = 100.0, 220.0


def _matmul(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix @ x`` over the channel axis of (..., 3, H, W)."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x.dtype), x)


class _Lab(ColorTransform):
    def to_space(self, rgb: Tensor) -> Tensor:
        big_l, a, b = rgb_to_lab(rgb).unbind(dim=-3)
        return torch.stack((big_l / _L_RANGE, a / _AB_RANGE + 0.5, b / _AB_RANGE + 0.5), dim=-3)

    def to_rgb(self, coords: Tensor) -> Tensor:
        big_l, a, b = coords.unbind(dim=-3)
        return lab_to_rgb(torch.stack((big_l * _L_RANGE, (a - 0.5) * _AB_RANGE, (b - 0.5) * _AB_RANGE), dim=-3))


class LearnedTransform(ColorTransform):
    """``M @ rgb + c`` and its exact inverse; ``M`` starts at the identity, ``c`` at zero (float32
    parameters, saved with the model as ``space.matrix`` and ``space.bias``)."""

    def __init__(self) -> None:
        super().__init__()
        self.matrix = nn.Parameter(torch.eye(3))
        self.bias = nn.Parameter(torch.zeros(3))

    def to_space(self, rgb: Tensor) -> Tensor:
        return _matmul(self.matrix, rgb) + self.bias.to(rgb.dtype).view(3, 1, 1)

    def to_rgb(self, coords: Tensor) -> Tensor:
        # Inverted in float64 at least, so a float64 round trip is exact to float64 precision.
        wide = torch.promote_types(coords.dtype, torch.float64)
        inverse = torch.linalg.inv(self.matrix.to(wide)).to(coords.dtype)
        return _matmul(inverse, coords - self.bias.to(coords.dtype).view(3, 1, 1))


register_color_space("rgb", _Rgb)
register_color_space("ycbcr", _YCbCr)
register_color_space("y", _LumaOnly)
register_color_space("lab", _Lab)
register_color_space("learned", LearnedTransform)


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
        # The colours are converted in float32 at least (a half-precision network gets and gives 16-bit
        # coordinates); the RGB output is in that wider dtype.
        wide = torch.promote_types(x.dtype, torch.float32)
        coords = self.space.to_space(x.to(wide))
        if len(self.space.predicted) == 3:
            return self.space.to_rgb(self.net(coords.to(x.dtype), *args, **kwargs).to(wide))
        # One predicted coordinate (Y): fed as three equal channels, read as the mean of the three outputs.
        (index,) = self.space.predicted
        luma = coords[:, index : index + 1].to(x.dtype)
        predicted = self.net(luma.expand(-1, 3, -1, -1), *args, **kwargs).to(wide).mean(dim=1, keepdim=True)
        rest = [c for c in range(3) if c != index]
        upscaled = imresize(coords[:, rest], size=tuple(predicted.shape[-2:]))
        channels = list(upscaled.unbind(dim=1))
        channels.insert(index, predicted[:, 0])
        return self.space.to_rgb(torch.stack(channels, dim=1))


def warm_start_target(model: nn.Module, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """What a warm start (``init_from``) loads into: a wrapped network takes the weights of a bare one
    (an RGB run's), a wrapper's weights (``net.*``, ``space.*``) go to the wrapper."""
    if isinstance(model, ColorSpaceModel) and not any(k.startswith("net.") for k in state_dict):
        return model.net
    return model


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


def build_in_color_space(name: str, *, scale: int | float, args: Mapping[str, Any] | None = None) -> nn.Module:
    """:func:`srlab.models.registry.build_model`, plus the hyper-parameter ``color_space`` (default rgb)
    that every model takes: the model built without it, then :func:`in_color_space`."""
    args = dict(args or {})
    color_space = args.pop(COLOR_SPACE_ARG, "rgb")
    return in_color_space(build_model(name, scale=scale, args=args), color_space)
