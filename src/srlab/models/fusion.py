"""Network fusion: N registered SR models and a learned layer that fuses their outputs.

The study, section 6.4 ("Network Fusion"): "Network fusion uses the output of all additional SR models
and applies a fusion layer to the outputs. Finally, it predicts the SR image used for the learning
objective." srlab's ``fusion`` model is that: it runs every member on the LR image and fuses their N
RGB outputs with one of three layers,

- ``conv1x1``: a 1x1 convolution over the concatenated outputs (3N -> 3 channels);
- ``conv3x3``: the same with a 3x3 kernel (zero padding), so each pixel also sees its neighbours;
- ``softmax``: a 3x3 convolution over the concatenation predicts N logits per pixel, whose softmax
  weighs the members' outputs (a per-pixel convex combination: the result stays within the members'
  range, and the layer cannot invent colours).

Every layer starts as the plain average of the members (centre taps 1/N and zero bias; zero logits), so
an untrained fusion is the averaging ensemble, and a fusion of N identical models computes that model
(up to float rounding). Training (``srlab train --model fusion``, any of the usual objectives) then
learns the layer; the members are frozen (``requires_grad`` off, always in eval mode, so their weights
stay bit-identical and their outputs deterministic) unless ``trainable=True``.

Members: ``members="name:FILE,name:FILE,..."``, each a registered model built at the fusion's scale with
its variant's default hyper-parameters (pick the variant by name: ``rlfn_s``, ``bsrn_s``) and its
weights read by srlab's checkpoint reader (:func:`srlab.models.weights.read_checkpoint`: official
``.pth`` releases in their training form, or ``srlab train``'s ``.safetensors``) and loaded strictly.
``FILE`` may be left out (``members=imdn,rlfn,bsrn``): that member starts freshly initialised. That is
what training members from scratch (with ``trainable=True``) means, and how a fusion checkpoint is read
without its member files: a fusion's own checkpoint holds every member's weights (``members.<i>.*``)
beside the fusion layer's (``fuse.*``), so ``srlab eval --checkpoint RUN/best.safetensors`` rebuilds it
from the member files its metadata records and then overwrites every tensor with the checkpoint's; where
those files are gone, ``--model_arg members=imdn,rlfn,bsrn`` (the names alone) overrides the recorded
spec and the checkpoint alone suffices. Relative FILEs are read from the working directory.

Metadata for the one inference path (srlab.inference.upscale): the scale must be one each member takes;
``size_multiple`` is the least common multiple of the members'; ``receptive_radius`` the largest
member's plus the fusion layer's (1 LR pixel for the 3x3 layers); ``pad_mode`` is "inside": each member
gets the image padded as that member's own metadata asks (and its output cropped), so within the fusion
every member computes exactly what it computes alone. Cost: the members' MACs plus the fusion layer's
(the softmax weighting is element-wise, which the MAC convention does not count).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.layers.padding import pad_to_multiple
from srlab.models.registry import ModelInfo, build_model, model_info, register_model, spec_of
from srlab.models.weights import load_state_dict_strict, read_checkpoint

FUSIONS = ("conv1x1", "conv3x3", "softmax")
# The members of the default build (`srlab models`, the zoo checks): the experiment, unloaded.
DEFAULT_MEMBERS = "imdn,rlfn,bsrn"
_RGB = 3


def parse_members(members: str) -> list[tuple[str, str]]:
    """``"imdn:A.pth,rlfn"`` -> [("imdn", "A.pth"), ("rlfn", "")]; an SrlabError for an empty entry."""
    parsed = []
    for item in members.split(","):
        name, _, file = (part.strip() for part in item.strip().partition(":"))
        if not name:
            raise SrlabError(
                f"fusion members {members!r}: an empty entry; give name:FILE pairs separated by commas "
                "(--model_arg members=imdn:IMDN_x4.pth,rlfn:rlfn_x4.pth)"
            )
        parsed.append((name, file))
    if len(parsed) < 2:
        raise SrlabError(f"fusion members {members!r}: fuse at least two models (name:FILE,name:FILE)")
    return parsed


def _member_infos(args: Mapping[str, Any]) -> list[ModelInfo]:
    return [model_info(name) for name, _ in parse_members(args["members"])]


def _layer_radius(fusion: str) -> int:
    """How far (LR pixels) the fusion layer looks: a 3x3 kernel reaches one HR pixel, i.e. one LR pixel."""
    return 0 if fusion == "conv1x1" else 1


def _size_multiple(args: Mapping[str, Any]) -> int:
    return math.lcm(*(info.size_multiple for info in _member_infos(args)))


def _receptive_radius(args: Mapping[str, Any]) -> int:
    return max(info.receptive_radius for info in _member_infos(args)) + _layer_radius(args["fusion"])


def _half_precision_safe(args: Mapping[str, Any]) -> bool:
    return all(info.half_precision_safe for info in _member_infos(args))


def _float32_modules(args: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"members.{i}.{pattern}" for i, info in enumerate(_member_infos(args)) for pattern in info.float32_modules)


def averaging_conv(members: int, kernel_size: int) -> nn.Conv2d:
    """A conv over N concatenated RGB images that starts as their average: centre tap 1/N from each
    member's matching channel, every other weight and the bias zero."""
    conv = nn.Conv2d(_RGB * members, _RGB, kernel_size, padding=kernel_size // 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        centre = kernel_size // 2
        for member in range(members):
            for channel in range(_RGB):
                conv.weight[channel, member * _RGB + channel, centre, centre] = 1.0 / members
    return conv


class ConvFusion(nn.Module):
    """A convolution over the concatenated outputs (``conv1x1`` / ``conv3x3``)."""

    def __init__(self, members: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = averaging_conv(members, kernel_size)

    def forward(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(torch.cat(outputs, dim=1))


class SoftmaxFusion(nn.Module):
    """Per-pixel weights: a 3x3 conv predicts one logit per member, softmax over members weighs them.
    Zero-initialised logits: equal weights 1/N."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.logits = nn.Conv2d(_RGB * members, members, 3, padding=1)
        nn.init.zeros_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)

    def forward(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        weights = torch.softmax(self.logits(torch.cat(outputs, dim=1)), dim=1)
        return sum(weights[:, i : i + 1] * out for i, out in enumerate(outputs))


def fusion_layer(kind: str, members: int) -> nn.Module:
    if kind == "softmax":
        return SoftmaxFusion(members)
    return ConvFusion(members, 1 if kind == "conv1x1" else 3)


class Fusion(nn.Module):
    def __init__(self, members: list[nn.Module], *, scale: int, fusion: str, trainable: bool) -> None:
        super().__init__()
        self.scale = scale
        self.trainable = trainable
        self.members = nn.ModuleList(members)
        self.fuse = fusion_layer(fusion, len(members))
        if not trainable:
            self.members.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> Fusion:
        super().train(mode)
        if not self.trainable:  # frozen members always compute their inference function
            self.members.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse([self._run(member, x) for member in self.members])

    def _run(self, member: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The member's output for ``x``, padded and cropped as the inference path does for it alone."""
        info = spec_of(member).info
        if info.pad_mode == "inside" or info.size_multiple <= 1:
            return member(x)
        height, width = x.shape[-2:]
        out = member(pad_to_multiple(x, info.size_multiple, info.pad_mode))
        return out[..., : height * self.scale, : width * self.scale]


def build_member(name: str, file: str, *, scale: int) -> nn.Module:
    """Member ``name`` at ``scale``, with the weights of ``file`` loaded strictly ("": fresh)."""
    where = f"fusion member '{name}:{file}'" if file else f"fusion member '{name}'"
    try:
        info = model_info(name)
        if info.arbitrary_scale or info.adaptive:
            raise SrlabError(f"model {name!r} is {'arbitrary-scale' if info.arbitrary_scale else 'adaptive'}: "
                             "fuse models that map an LR image to one SR image")
        member = build_model(name, scale=scale)
        if file:
            _load_member(member, Path(file), name, scale)
    except SrlabError as e:
        raise SrlabError(f"{where}: {e}") from None
    return member.eval()


def _load_member(member: nn.Module, path: Path, name: str, scale: int) -> None:
    if not path.exists():
        raise SrlabError(
            f"'{path}' does not exist: give the member's weights file; to read a fusion checkpoint (it holds "
            "every member's weights) without the member files, name the members alone (--model_arg members="
            "imdn,rlfn,...)"
        )
    ckpt = read_checkpoint(path)
    if ckpt.model is not None:  # written by srlab: it says what it holds
        if (ckpt.model, ckpt.scale) != (name, scale):
            raise SrlabError(f"'{path}' holds {ckpt.model} x{ckpt.scale}, not {name} x{scale}")
        if ckpt.args != spec_of(member).args:
            raise SrlabError(
                f"'{path}' holds {name} with hyper-parameters {ckpt.args}: members use their variant's defaults "
                f"{dict(spec_of(member).args)}"
            )
    load_state_dict_strict(member, ckpt)


def _info() -> ModelInfo:
    return ModelInfo(
        paper="Network fusion (the study, section 6.4): a learned layer over the outputs of N SR models",
        origin="srlab",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        size_multiple=_size_multiple,
        pad_mode="inside",
        half_precision_safe=_half_precision_safe,
        float32_modules=_float32_modules,
        receptive_radius=_receptive_radius,
    )


@register_model(_info())
def fusion(*, scale: int, members: str = DEFAULT_MEMBERS, fusion: str = "conv1x1", trainable: bool = False) -> Fusion:
    """``members``: "name:FILE,name:FILE,..." (FILE optional: fresh weights); ``fusion``: conv1x1, conv3x3
    or softmax; ``trainable``: train the members too (frozen by default)."""
    if fusion not in FUSIONS:
        raise SrlabError(f"fusion layer {fusion!r} is unknown: use one of {', '.join(FUSIONS)}")
    built = [build_member(name, file, scale=scale) for name, file in parse_members(members)]
    return Fusion(built, scale=scale, fusion=fusion, trainable=trainable)
