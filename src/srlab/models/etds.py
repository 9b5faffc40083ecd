"""ETDS: Equivalent Transformation and Dual Stream network.

Paper: Chao et al., "Equivalent Transformation and Dual Stream Network Construction for Mobile Image
Super-Resolution", CVPR 2023. Official repository: ECNUSR/ETDS (Apache-2.0),
``core/archs/ir/ETDS/arch.py`` (``ETDS``, ``ETDSForInference``) and ``converter.py``.

Two forms, with the official parameter names:

* the training form (official ``ETDS``), built by the registry factories: a backbone stream of
  ``num_feat - num_residual_feat`` channels and a residual stream of ``num_residual_feat`` channels
  (initialised to carry the input through unchanged and to repeat it ``scale**2`` times before the
  pixel shuffle). Each block computes ``x, r = relu(backbone(x) + add_residual(r)), relu(residual(r))``;
  the output is ``shuffle(conv_last(x)) + shuffle(conv_residual_last(r))``.
* the inference form (official ``ETDSForInference``), returned by :meth:`ETDS.deploy` and the form of
  the released weights: a plain stack of 3x3 conv + ReLU on ``num_feat`` channels (the two streams
  concatenated, the residual stream's kernels embedded block-diagonally), then ``conv_last`` + ReLU and a
  1x1 ``conv_clip`` + ReLU, and the pixel shuffle. As in the official converter, ``conv_last`` holds the
  negated sum of both last convolutions with bias ``1 - b`` and ``conv_clip`` is ``-I`` with bias 1, so
  that ``relu(1 - relu(1 - y)) = clamp(y, 0, 1)``: the inference form computes the training form's
  output clipped to [0, 1]. At x3 both last layers carry one extra channel (28 = 3*9 + 1, weight 0,
  bias 1, for a channel count that is a multiple of 4) that is dropped before the shuffle.

RGB in [0, 1] in and out; no mean shift.

Deviations from the official code:

* the official ``ETDS.forward`` returns ``(x + r, r)`` (the second term feeds the interpolation loss);
  here ``forward`` returns the image and :meth:`ETDS.forward_streams` returns both.
* in eval mode the training form clamps its output to [0, 1] (the official converter compares the two
  forms after exactly this clamp), so that ``deploy(model)(x) == model(x)``; in train mode it is
  unclamped like the official one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.models.reparam import conv_from
from srlab.models.registry import ModelInfo, register_model


class ETDSForInference(nn.Module):
    """The plain inference form (official ``ETDSForInference``), the form of the released weights."""

    def __init__(self, *, scale: int, num_in_ch: int, num_block: int, num_feat: int) -> None:
        super().__init__()
        self.scale = scale
        out_ch = num_in_ch * scale * scale
        # x3: one padding channel so the count is a multiple of 4 (dropped after conv_clip).
        self.extra = 1 if scale == 3 else 0
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.backbone_convs = nn.ModuleList(nn.Conv2d(num_feat, num_feat, 3, padding=1) for _ in range(num_block))
        self.conv_last = nn.Conv2d(num_feat, out_ch + self.extra, 3, padding=1)
        self.conv_clip = nn.Conv2d(out_ch + self.extra, out_ch + self.extra, 1)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_first(x))
        for conv in self.backbone_convs:
            x = F.relu(conv(x))
        x = F.relu(self.conv_clip(F.relu(self.conv_last(x))))
        if self.extra:
            x = x[:, : x.shape[1] - self.extra]
        return self.upsampler(x)


class ETDS(nn.Module):
    """The dual-stream training form (official ``ETDS``)."""

    def __init__(
        self, *, scale: int, num_in_ch: int, num_block: int, num_feat: int, num_residual_feat: int
    ) -> None:
        super().__init__()
        if not num_feat > num_residual_feat >= num_in_ch:
            raise ValueError(
                f"need num_feat > num_residual_feat >= {num_in_ch}, got {num_feat} and {num_residual_feat}"
            )
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_feat = num_feat
        backbone = num_feat - num_residual_feat
        out_ch = num_in_ch * scale * scale
        self.conv_first = nn.Conv2d(num_in_ch, backbone, 3, padding=1)
        self.conv_residual_first = nn.Conv2d(num_in_ch, num_residual_feat, 3, padding=1)
        self.backbone_convs = nn.ModuleList(nn.Conv2d(backbone, backbone, 3, padding=1) for _ in range(num_block))
        self.residual_convs = nn.ModuleList(
            nn.Conv2d(num_residual_feat, num_residual_feat, 3, padding=1) for _ in range(num_block)
        )
        self.add_residual_convs = nn.ModuleList(
            nn.Conv2d(num_residual_feat, backbone, 3, padding=1) for _ in range(num_block)
        )
        self.conv_last = nn.Conv2d(backbone, out_ch, 3, padding=1)
        self.conv_residual_last = nn.Conv2d(num_residual_feat, out_ch, 3, padding=1)
        self.upsampler = nn.PixelShuffle(scale)
        self._init_residual_stream()

    @torch.no_grad()
    def _init_residual_stream(self) -> None:
        """The official init: the residual stream passes the input through and repeats it scale^2
        times (nearest-neighbour upscaling after the shuffle); the stream-to-backbone convs start at 0."""
        s2 = self.scale * self.scale
        for conv in (self.conv_residual_first, *self.residual_convs, *self.add_residual_convs, self.conv_residual_last):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        for c in range(self.num_in_ch):
            self.conv_residual_first.weight[c, c, 1, 1] = 1.0
            self.conv_residual_last.weight[c * s2 : (c + 1) * s2, c, 1, 1] = 1.0
        for conv in self.residual_convs:
            for c in range(conv.out_channels):
                conv.weight[c, c, 1, 1] = 1.0

    def forward_streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, residual stream output) like the official forward (unclamped)."""
        f = F.relu(self.conv_first(x))
        r = F.relu(self.conv_residual_first(x))
        for backbone, residual, add_residual in zip(self.backbone_convs, self.residual_convs, self.add_residual_convs):
            f, r = F.relu(backbone(f) + add_residual(r)), F.relu(residual(r))
        r = self.upsampler(self.conv_residual_last(r))
        return self.upsampler(self.conv_last(f)) + r, r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.forward_streams(x)
        # The inference form clips to [0, 1] (official converter); match it outside training.
        return out if self.training else out.clamp(0.0, 1.0)

    @torch.no_grad()
    def deploy(self) -> ETDSForInference:
        """The equivalent plain network (official ``converter.py``); ``self`` is left unchanged."""
        fused = ETDSForInference(
            scale=self.scale, num_in_ch=self.num_in_ch, num_block=len(self.backbone_convs), num_feat=self.num_feat
        )
        ref = self.conv_first.weight
        # conv_first: both streams' first convs stacked along the output channels.
        fused.conv_first = conv_from(
            torch.cat((self.conv_first.weight, self.conv_residual_first.weight)),
            torch.cat((self.conv_first.bias, self.conv_residual_first.bias)),
        )
        # Each block: [backbone | add_residual] for the backbone rows, [0 | residual] for the stream rows.
        for i, (backbone, residual, add_residual) in enumerate(
            zip(self.backbone_convs, self.residual_convs, self.add_residual_convs)
        ):
            top = torch.cat((backbone.weight, add_residual.weight), dim=1)
            zeros = torch.zeros(
                residual.out_channels, backbone.in_channels, 3, 3, dtype=ref.dtype, device=ref.device
            )
            bottom = torch.cat((zeros, residual.weight), dim=1)
            fused.backbone_convs[i] = conv_from(
                torch.cat((top, bottom)), torch.cat((backbone.bias + add_residual.bias, residual.bias))
            )
        # conv_last + conv_clip: y = sum of both last convs; relu(1 - relu(1 - y)) = clamp(y, 0, 1).
        out_ch = self.conv_last.out_channels
        total = out_ch + fused.extra
        weight = torch.zeros(total, self.num_feat, 3, 3, dtype=ref.dtype, device=ref.device)
        bias = torch.ones(total, dtype=ref.dtype, device=ref.device)
        weight[:out_ch] = -torch.cat((self.conv_last.weight, self.conv_residual_last.weight), dim=1)
        bias[:out_ch] = 1.0 - (self.conv_last.bias + self.conv_residual_last.bias)
        fused.conv_last = conv_from(weight, bias)
        eye = torch.eye(total, dtype=ref.dtype, device=ref.device).reshape(total, total, 1, 1)
        fused.conv_clip = conv_from(-eye, torch.ones(total, dtype=ref.dtype, device=ref.device))
        return fused


def _info() -> ModelInfo:
    return ModelInfo(
        paper="Chao et al., Equivalent Transformation and Dual Stream Network Construction for Mobile "
        "Image Super-Resolution, CVPR 2023",
        origin="https://github.com/ECNUSR/ETDS",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        size_multiple=1,
        # num_block + 2 stacked 3x3 convolutions, one LR pixel each.
        receptive_radius=lambda a: a["num_block"] + 2,
        reparameterizable=True,
        half_precision_safe=True,
    )


def _build(scale: int, num_block: int, num_feat: int, num_residual_feat: int) -> ETDS:
    return ETDS(scale=scale, num_in_ch=3, num_block=num_block, num_feat=num_feat, num_residual_feat=num_residual_feat)


@register_model(_info())
def etds_t(*, scale: int, num_block: int = 5, num_feat: int = 16, num_residual_feat: int = 3) -> ETDS:
    """ETDS-T (M5C16)."""
    return _build(scale, num_block, num_feat, num_residual_feat)


@register_model(_info())
def etds_s(*, scale: int, num_block: int = 4, num_feat: int = 32, num_residual_feat: int = 3) -> ETDS:
    """ETDS-S (M4C32)."""
    return _build(scale, num_block, num_feat, num_residual_feat)


@register_model(_info())
def etds_m(*, scale: int, num_block: int = 6, num_feat: int = 32, num_residual_feat: int = 3) -> ETDS:
    """ETDS-M (M6C32)."""
    return _build(scale, num_block, num_feat, num_residual_feat)


@register_model(_info())
def etds_l(*, scale: int, num_block: int = 7, num_feat: int = 48, num_residual_feat: int = 3) -> ETDS:
    """ETDS-L (M7C48)."""
    return _build(scale, num_block, num_feat, num_residual_feat)
