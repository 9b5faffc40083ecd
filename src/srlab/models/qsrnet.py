"""QuickSRNet ("QSRNet"): a plain convolutional network for real-time super-resolution on mobile devices.

Paper: Guillaume Berger, Manik Dhingra, Antoine Mercier, Yashesh Savani, Sunny Panchal, Fatih Porikli,
"QuickSRNet: Plain Single-Image Super-Resolution Architecture for Faster Inference on Mobile Platforms",
CVPR Workshops 2023 (arXiv 2303.04336). The study's reading list calls it "QSRNet: Quick SR Network for
Mobile (2023)"; QuickSRNet is the 2023 network of that name and purpose, which is the identification made
here. Official code: Qualcomm's AIMET Model Zoo, quic/aimet-model-zoo, read at commit d09d2b0:
``aimet_zoo_torch/quicksrnet/model/models.py`` (class ``QuickSRNetBase`` and the variants
``QuickSRNetSmall/Medium/Large``), ``model/blocks.py`` (``AnchorOp``) and the model cards
``model/model_cards/quicksrnet_{small,medium,large}_{1.5,2,3,4}x_w8a8.json``. Its licence is Qualcomm's own
"AIMET Model Zoo" terms of use (``LICENSE.pdf``: a non-exclusive, revocable licence to use, copy, modify
and distribute, not an OSI licence), hence the ``LicenseRef`` identifier below. This file is written from
that structure; module and parameter names are the official ones (``cnn.<i>``, ``conv_last``,
``anchor.net``), so the released float checkpoints (``quicksrnet_<variant>_<s>x_checkpoint_float32.pth.tar``
on the repository's GitHub releases, which hold the state dict under ``"state_dict"``) load with strict key
matching. Those releases are not reachable from here, so srlab registers none.

Structure, on RGB in [0, 1] (every clip below relies on that range):

* ``cnn``: a 3x3 conv (3 -> C) and ``num_intermediate_layers`` 3x3 convs (C -> C), each followed by
  ``Hardtanh(0, 1)`` (a clipped ReLU, chosen for 8-bit quantisation).
* ``conv_last``: a 3x3 conv (C -> 3 s^2).
* Large only, the input-to-output ("ito") connection: ``anchor``, a 1x1 conv (3 -> 3 s^2, with bias)
  initialised to repeat each input channel s^2 times (nearest-neighbour upsampling once shuffled) and
  trained with the rest (``freeze_weights=False``), added to ``conv_last``'s output.
* ``Hardtanh(0, 1)`` on the result, then ``PixelShuffle(s)``.

Variants (the official subclasses): Small C=32, 2 intermediate layers, no ito connection; Medium C=32,
5 layers, none; Large C=64, 11 layers, with it. Registered as ``qsrnet_small``, ``qsrnet`` (Medium, the
middle configuration) and ``qsrnet_large``; the width, depth and connection are hyper-parameters, read
back from weights of any size.

Initialisation (part of the published recipe: it replaces the ito connection of Small and Medium): PyTorch's
default initialisation, then each ``cnn`` conv gets +1 at the kernel centre of its diagonal (output channel
i reads input channel i, for i < min(in, out)), so that the first three feature channels start as the
(clipped) image; without the ito connection ``conv_last`` gets +1 at the centre of output channel o from
input channel o // s^2, so that the untrained network is nearest-neighbour upsampling plus a perturbation.

Parameters (all trainable, none shared): Small 22,860 / 27,195 / 33,264 at x2 / x3 / x4, Medium 50,604 /
54,939 / 61,008, Large 414,972 / 423,687 / 435,888; ``tests/models/test_qsrnet.py`` derives them by hand.
Qualcomm's AI Hub model cards (quic/ai-hub-models, ``qai_hub_models/models/quicksrnet{small,medium,large}/
info.yaml``) print 33.3K, 61.0K and 436K: the x4 networks' counts (the cards name a x3 checkpoint, whose
counts are lower).
The paper's own tables were not reachable offline, so no figure of the paper is checked.

Checked once against the official class (run from /tmp, never committed): equal state-dict listings at
every variant and scale, equal initial weights from the same seed, and equal outputs (float64, difference
0.0) with the same random weights loaded strictly.

Deviations from the official code: the official class also builds the x1.5 network (pixel-unshuffle by 2,
a 1x1 ``conv_last``, shuffle by 3); srlab's scales are integers, so it is left out. ``to_dcr`` (the
channel order of Qualcomm's depth-to-space) is a deployment detail for their runtime and is left out too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srlab.models.registry import ModelInfo, register_model

_PAPER = (
    "Berger et al., QuickSRNet: Plain Single-Image Super-Resolution Architecture for Faster Inference on "
    "Mobile Platforms, CVPR Workshops 2023"
)
_ORIGIN = "https://github.com/quic/aimet-model-zoo"
_LICENCE = "LicenseRef-AIMET-Model-Zoo"


def clipped_relu() -> nn.Hardtanh:
    """``Hardtanh(0, 1)``: QuickSRNet's activation everywhere (its inputs and outputs are in [0, 1])."""
    return nn.Hardtanh(min_val=0.0, max_val=1.0)


class Anchor(nn.Module):
    """A 1x1 conv (3 -> 3 s^2, with bias) initialised to repeat each channel s^2 times (official ``AnchorOp``)."""

    def __init__(self, scale: int, in_channels: int = 3) -> None:
        super().__init__()
        self.net = nn.Conv2d(in_channels, in_channels * scale * scale, 1)
        with torch.no_grad():
            self.net.weight.zero_()
            self.net.bias.zero_()
            for out_channel in range(self.net.out_channels):
                self.net.weight[out_channel, out_channel // (scale * scale), 0, 0] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class QuickSRNet(nn.Module):
    def __init__(self, *, scale: int, channels: int, num_intermediate_layers: int, ito_connection: bool) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"QuickSRNet is registered for scales 2, 3 and 4, got {scale}")
        self.scale = scale
        # The intermediate layers are built before the first conv, as officially: the same seed then draws
        # the same initial weights as the official class.
        intermediate: list[nn.Module] = []
        for _ in range(num_intermediate_layers):
            intermediate += [nn.Conv2d(channels, channels, 3, padding=1), clipped_relu()]
        self.cnn = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), clipped_relu(), *intermediate)
        self.conv_last = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.anchor = Anchor(scale) if ito_connection else None
        self.clip_output = clipped_relu()
        self.depth_to_space = nn.PixelShuffle(scale)
        self._initialise()

    def _initialise(self) -> None:
        """The official ``initialize``: identity-like convolutions on top of PyTorch's default initialisation."""
        with torch.no_grad():
            for conv in self.cnn:
                if isinstance(conv, nn.Conv2d):
                    for channel in range(min(conv.in_channels, conv.out_channels)):
                        conv.weight[channel, channel, 1, 1] += 1.0
            if self.anchor is None:  # conv_last starts as nearest upsampling of feature channels 0..2
                for out_channel in range(self.conv_last.out_channels):
                    self.conv_last.weight[out_channel, out_channel // (self.scale * self.scale), 1, 1] += 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_last(self.cnn(x))
        if self.anchor is not None:
            out = out + self.anchor(x)
        return self.depth_to_space(self.clip_output(out))


def _args_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, int | bool]:
    """Width from the first convolution, depth from the number of ``cnn`` convolutions, the ito connection
    from the anchor's presence."""
    convs = sum(1 for k in weights if k.startswith("cnn.") and k.endswith(".weight"))
    return {
        "channels": weights["cnn.0.weight"].shape[0],
        "num_intermediate_layers": convs - 1,
        "ito_connection": "anchor.net.weight" in weights,
    }


def _info(variant: str) -> ModelInfo:
    return ModelInfo(
        paper=f"{_PAPER} (QuickSRNet-{variant})",
        origin=_ORIGIN,
        licence=_LICENCE,
        scales=(2, 3, 4),
        # one pixel per 3x3 conv: the cnn's, conv_last's (the anchor is 1x1)
        receptive_radius=lambda a: a["num_intermediate_layers"] + 2,
        args_from_weights=_args_from_weights,
    )


@register_model(_info("Small"))
def qsrnet_small(
    *, scale: int, channels: int = 32, num_intermediate_layers: int = 2, ito_connection: bool = False
) -> QuickSRNet:
    """QuickSRNet-Small (official ``QuickSRNetSmall``: 32 channels, 2 intermediate layers)."""
    return QuickSRNet(
        scale=scale, channels=channels, num_intermediate_layers=num_intermediate_layers, ito_connection=ito_connection
    )


@register_model(_info("Medium"))
def qsrnet(
    *, scale: int, channels: int = 32, num_intermediate_layers: int = 5, ito_connection: bool = False
) -> QuickSRNet:
    """QuickSRNet-Medium (official ``QuickSRNetMedium``: 32 channels, 5 intermediate layers)."""
    return QuickSRNet(
        scale=scale, channels=channels, num_intermediate_layers=num_intermediate_layers, ito_connection=ito_connection
    )


@register_model(_info("Large"))
def qsrnet_large(
    *, scale: int, channels: int = 64, num_intermediate_layers: int = 11, ito_connection: bool = True
) -> QuickSRNet:
    """QuickSRNet-Large (official ``QuickSRNetLarge``: 64 channels, 11 intermediate layers, ito connection)."""
    return QuickSRNet(
        scale=scale, channels=channels, num_intermediate_layers=num_intermediate_layers, ito_connection=ito_connection
    )
