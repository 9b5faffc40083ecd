"""ARM supernets: width-slimmable FSRCNN, CARN-M and SRResNet, one network per backbone, several subnets.

Paper: Chen et al., "ARM: Any-Time Super-Resolution Method", ECCV 2022. Official code:
chenbong/ARM-Net (no licence stated), ``models/archs/{FSRCNN,CARN}_arch.py`` and ``arch_util.py``;
released weights ``ckpt/arm-{fsrcnn,carn}.pth`` (x4, RGB in [0, 1]). Module and parameter names
equal the official ones, so the released state dicts load strictly.

Slimming rule (the official ``USConv2d`` / ``USConvTranspose2d``). A subnet of width ``w`` out of the
supernet's ``nf`` runs every slimmable convolution on the FIRST channels of its weight: a conv whose
output is slimmed keeps ``int(out_channels * w / nf)`` output channels (so the x2 sub-pixel convs of
CARN keep ``4 w``), and a conv whose input is slimmed takes as many input channels as it is given
(``weight[:, :C_in / groups]``) -- so a cascade fusion over ``[x, b(x)]`` of ``2 w`` channels uses the
first ``2 w`` input columns of its weight, not two blocks of ``w``. Biases are sliced like the
outputs. Subnets (the released supernets were trained for these widths only):

* ``arm_fsrcnn``: FSRCNN(56, 12, 4) as in the ARM code, widths 16 / 36 / 56 of ``nf = 56``. Only the
  56-channel feature maps are slimmed (the head conv's output, the shrink conv's input, the expand
  conv's output, the transposed conv's input). The ARM code's FSRCNN differs from the paper's: RGB,
  one shared PReLU slope per activation, NO activation between the four 3x3 mapping convs (one PReLU
  after the last), and a 9x9 transposed conv with padding 3 / output padding 1 (srlab's ``fsrcnn``
  uses 4 / scale - 1, so its output is shifted by a pixel from this one). Initialised as the official
  code: the convolutions Kaiming normal x 0.1 with zero biases, the transposed conv PyTorch's default
  (CARN-M keeps PyTorch's defaults, as the official code).
* ``arm_carn``: single-scale x4 CARN-M (``group=4``, recursive efficient residual blocks) as in the
  ARM code, widths 36 / 52 / 64 of ``nf = 64``, every feature map slimmed. The mean shifts are plain
  frozen 1x1 convs (``sub_mean.weight``, not the CARN repository's ``sub_mean.shifter.weight``).
* ``arm_srresnet``: the modified SRResNet (MSRResNet: 16 residual blocks conv-ReLU-conv without batch
  norm, LeakyReLU 0.1, two x2 sub-pixel stages, HR conv, and the bilinear upsampling of the input added
  to the output) of the official ``US_MSRResNet``, widths 36 / 52 / 64 of ``nf = 64`` (the official
  ``train_us_srresnet.yml``), every feature map slimmed; x2 / x3 (one sub-pixel stage) as the official
  code. Initialised as the official code: every conv Kaiming normal x 0.1, zero biases. Its
  released ``arm-srresnet.pth`` is not in srlab's shared copy, so only its structure is tested.

``forward(x, width=None)``: ``width`` is a subnet width in channels (one of ``model.widths``), None
the full width, or inside ``with model.at_width(w):`` the width ``w`` (so that a wrapper that calls
``model(x)``, as the trainer's DDP and compile wrappers do, runs one subnet: ARM's training steps,
:mod:`srlab.train.arm_sandwich_step`). Subnet 0 of the ARM lookup table (cost 0) is bicubic upsampling, not a width of the
network: :func:`srlab.models.arm_lookup.run_subnet` runs any table index.

Parameter counts (``paper_parameter_count``: trainable): ARM-FSRCNN 24,515 (= the paper's 24,515);
ARM-CARN 294,147 trainable + 24 frozen mean-shift values = 294,171, the paper's figure (which counts
the frozen values); ARM-SRResNet 1,517,571 (MSRResNet's count; the paper's table says 1.5M).

Released weights, Set5 x4 (whole image, Y, border 4; tests/models/test_arm.py): ARM-FSRCNN 29.69 /
30.42 / 30.62 dB at widths 16 / 36 / 56, ARM-CARN 31.29 / 31.66 / 31.94 dB at 36 / 52 / 64. The table's
``cost_list`` is 2 x the MACs of each subnet on a 32x32 patch (CARN's mean shifts not counted).

Deviations from the official code: none in structure or arithmetic. The width is an argument of
``forward`` instead of a ``width_mult`` attribute set on every module; only the trained widths are
accepted; the transposed conv always returns exactly ``4 x`` the input size (the official
``output_size`` argument is not offered).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.mean_shift import MeanShift
from srlab.models.carn import cascade
from srlab.models.registry import ModelInfo, register_model


class SlimConv2d(nn.Conv2d):
    """A conv whose input and/or output channels can be cut to the first ones (official ``USConv2d``)."""

    def __init__(self, *args, slim_in: bool, slim_out: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slim_in = slim_in
        self.slim_out = slim_out

    def forward(self, x: torch.Tensor, width_mult: float = 1.0) -> torch.Tensor:
        in_per_group = (x.shape[1] if self.slim_in else self.in_channels) // self.groups
        out = int(self.out_channels * width_mult) if self.slim_out else self.out_channels
        bias = None if self.bias is None else self.bias[:out]
        return self._conv_forward(x, self.weight[:out, :in_per_group], bias)


class SlimConvTranspose2d(nn.ConvTranspose2d):
    """A transposed conv whose input channels are cut to the first ones (official ``USConvTranspose2d``
    with ``us=[True, False]``)."""

    def forward(self, x: torch.Tensor, width_mult: float = 1.0) -> torch.Tensor:
        in_channels = int(self.in_channels * width_mult)
        return F.conv_transpose2d(
            x, self.weight[:in_channels], self.bias, self.stride, self.padding, self.output_padding,
            self.groups, self.dilation,
        )


def _official_init(*modules: nn.Module) -> None:
    """The official ``initialize_weights(..., 0.1)``: every nn.Conv2d inside ``modules`` gets Kaiming normal
    (fan in) weights scaled by 0.1 and zero biases."""
    for module in modules:
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
                with torch.no_grad():
                    conv.weight.mul_(0.1)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)


class SlimSequential(nn.Sequential):
    """A sequential that hands the width to the slimmable layers (and nested slimmable sequentials)."""

    def forward(self, x: torch.Tensor, width_mult: float = 1.0) -> torch.Tensor:
        for layer in self:
            slim = isinstance(layer, (SlimConv2d, SlimConvTranspose2d, SlimSequential))
            x = layer(x, width_mult) if slim else layer(x)
        return x


class Subnet(nn.Module):
    """One width of a supernet as a module of its own (shares the supernet's parameters): what routes,
    MAC counts and width sampling run."""

    def __init__(self, supernet: nn.Module, width: int) -> None:
        super().__init__()
        self.supernet = supernet
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, width=self.width)


class _Supernet(nn.Module):
    """Width bookkeeping shared by the supernets: ``widths`` are the trained subnet widths."""

    nf: int
    widths: tuple[int, ...]
    # The width a forward without ``width`` runs (None: the full network); set by at_width.
    active_width: int | None = None

    @contextlib.contextmanager
    def at_width(self, width: int) -> Iterator[None]:
        """Within the block, ``model(x)`` runs the subnet of ``width``."""
        self.width_mult(width)  # refuses an untrained width before anything runs
        previous, self.active_width = self.active_width, width
        try:
            yield
        finally:
            self.active_width = previous

    def width_mult(self, width: int | None) -> float:
        if width is None:
            width = self.active_width
        if width is None:
            return 1.0
        if width not in self.widths:
            raise ValueError(f"width must be one of {self.widths} (the trained subnets), got {width}")
        # The official code's multiplier, width_list / nf; int(channels * mult) is then exact.
        return width / self.nf


class ArmFSRCNN(_Supernet):
    """ARM's slimmable FSRCNN (official ``US_FSRCNN_net``)."""

    def __init__(self, *, scale: int, nf: int, s: int, m: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        if scale != 4:
            raise ValueError(f"ARM-FSRCNN's transposed conv (padding 3, output padding 1) is x4 only, got x{scale}")
        self.scale, self.nf, self.widths = scale, nf, widths
        self.head_conv = SlimSequential(
            SlimConv2d(3, nf, 5, padding=2, slim_in=False, slim_out=True), nn.PReLU()
        )
        layers: list[nn.Module] = [SlimSequential(SlimConv2d(nf, s, 1, slim_in=True, slim_out=False), nn.PReLU())]
        layers += [nn.Conv2d(s, s, 3, padding=1) for _ in range(m)]
        layers += [nn.PReLU(), SlimSequential(SlimConv2d(s, nf, 1, slim_in=False, slim_out=True), nn.PReLU())]
        self.body_conv = SlimSequential(*layers)
        self.tail_conv = SlimConvTranspose2d(nf, 3, 9, stride=scale, padding=3, output_padding=1)
        # As the official code: the convolutions (not the transposed one, which is no nn.Conv2d) start
        # from Kaiming normal x 0.1 and zero biases.
        _official_init(self.head_conv, self.body_conv)

    def forward(self, x: torch.Tensor, width: int | None = None) -> torch.Tensor:
        mult = self.width_mult(width)
        return self.tail_conv(self.body_conv(self.head_conv(x, mult), mult), mult)


def _conv_relu(in_channels: int, out_channels: int, kernel: int) -> SlimSequential:
    """Official ``BasicBlock``: slimmable conv + ReLU (the 1x1 cascade fusions)."""
    return SlimSequential(
        SlimConv2d(in_channels, out_channels, kernel, padding=kernel // 2, slim_in=True, slim_out=True),
        nn.ReLU(inplace=True),
    )


class SlimEfficientResidualUnit(nn.Module):
    """CARN-M's residual-E block, slimmable: grouped 3x3, ReLU, grouped 3x3, ReLU, 1x1, add, ReLU."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.body = SlimSequential(
            SlimConv2d(channels, channels, 3, padding=1, groups=group, slim_in=True, slim_out=True),
            nn.ReLU(inplace=True),
            SlimConv2d(channels, channels, 3, padding=1, groups=group, slim_in=True, slim_out=True),
            nn.ReLU(inplace=True),
            SlimConv2d(channels, channels, 1, slim_in=True, slim_out=True),
        )

    def forward(self, x: torch.Tensor, width_mult: float) -> torch.Tensor:
        return F.relu(self.body(x, width_mult) + x)


class SlimRecursiveBlock(nn.Module):
    """CARN-M's local cascade: one efficient residual unit ``b1`` applied three times (shared)."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.b1 = SlimEfficientResidualUnit(channels, group=group)
        self.c1 = _conv_relu(2 * channels, channels, 1)
        self.c2 = _conv_relu(3 * channels, channels, 1)
        self.c3 = _conv_relu(4 * channels, channels, 1)

    def forward(self, x: torch.Tensor, width_mult: float) -> torch.Tensor:
        return cascade(x, [self.b1, self.b1, self.b1], [self.c1, self.c2, self.c3], width_mult)


def _upsample_stage(channels: int, group: int) -> list[nn.Module]:
    """One x2 stage: grouped slimmable 3x3 conv to 4 C, ReLU, PixelShuffle 2."""
    return [
        SlimConv2d(channels, 4 * channels, 3, padding=1, groups=group, slim_in=True, slim_out=True),
        nn.ReLU(inplace=True),
        nn.PixelShuffle(2),
    ]


class SlimUpsampleX4(nn.Module):
    """Two x2 stages (official ``_UpsampleBlock(scale=4)``)."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.body = SlimSequential(*_upsample_stage(channels, group), *_upsample_stage(channels, group))

    def forward(self, x: torch.Tensor, width_mult: float) -> torch.Tensor:
        return self.body(x, width_mult)


class ArmCARN(_Supernet):
    """ARM's slimmable single-scale CARN-M (official ``US_CARN_M``, ``multi_scale=False``)."""

    def __init__(self, *, scale: int, nf: int, group: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        if scale != 4:
            raise ValueError(f"ARM-CARN is released as a single-scale x4 network, got x{scale}")
        if any(w % group for w in widths):
            raise ValueError(f"every width ({widths}) must be divisible by group ({group})")
        self.scale, self.nf, self.widths = scale, nf, widths
        self.sub_mean = MeanShift(1.0, sign=-1)
        self.add_mean = MeanShift(1.0, sign=+1)
        self.entry = SlimConv2d(3, nf, 3, padding=1, slim_in=False, slim_out=True)
        self.b1 = SlimRecursiveBlock(nf, group=group)
        self.b2 = SlimRecursiveBlock(nf, group=group)
        self.b3 = SlimRecursiveBlock(nf, group=group)
        self.c1 = _conv_relu(2 * nf, nf, 1)
        self.c2 = _conv_relu(3 * nf, nf, 1)
        self.c3 = _conv_relu(4 * nf, nf, 1)
        # The official single-scale ``UpsampleBlock`` holds its one branch as ``up``.
        self.upsample = nn.ModuleDict({"up": SlimUpsampleX4(nf, group=group)})
        self.exit = SlimConv2d(nf, 3, 3, padding=1, slim_in=True, slim_out=False)

    def forward(self, x: torch.Tensor, width: int | None = None) -> torch.Tensor:
        mult = self.width_mult(width)
        features = self.entry(self.sub_mean(x), mult)
        features = cascade(features, [self.b1, self.b2, self.b3], [self.c1, self.c2, self.c3], mult)
        return self.add_mean(self.exit(self.upsample["up"](features, mult), mult))


class SlimResidualBlock(nn.Module):
    """MSRResNet's block without batch norm, slimmable: conv 3x3, ReLU, conv 3x3, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = SlimConv2d(channels, channels, 3, padding=1, slim_in=True, slim_out=True)
        self.conv2 = SlimConv2d(channels, channels, 3, padding=1, slim_in=True, slim_out=True)

    def forward(self, x: torch.Tensor, width_mult: float) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x, width_mult)), width_mult)


class ArmSRResNet(_Supernet):
    """ARM's slimmable modified SRResNet (official ``US_MSRResNet``)."""

    def __init__(self, *, scale: int, nf: int, nb: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"ARM-SRResNet upsamples x2, x3 or x4, got x{scale}")
        self.scale, self.nf, self.widths = scale, nf, widths
        self.conv_first = SlimConv2d(3, nf, 3, padding=1, slim_in=False, slim_out=True)
        self.recon_trunk = nn.ModuleList(SlimResidualBlock(nf) for _ in range(nb))
        # x4: two x2 stages (upconv1, upconv2); x2 / x3: one stage of factor 2 / 3 (upconv1).
        factor = 2 if scale == 4 else scale
        self.upconv1 = SlimConv2d(nf, nf * factor**2, 3, padding=1, slim_in=True, slim_out=True)
        if scale == 4:
            self.upconv2 = SlimConv2d(nf, nf * factor**2, 3, padding=1, slim_in=True, slim_out=True)
        self.pixel_shuffle = nn.PixelShuffle(factor)
        self.HRconv = SlimConv2d(nf, nf, 3, padding=1, slim_in=True, slim_out=True)
        self.conv_last = SlimConv2d(nf, 3, 3, padding=1, slim_in=True, slim_out=False)
        _official_init(self)

    def forward(self, x: torch.Tensor, width: int | None = None) -> torch.Tensor:
        mult = self.width_mult(width)
        features = F.leaky_relu(self.conv_first(x, mult), 0.1)
        for block in self.recon_trunk:
            features = block(features, mult)
        features = F.leaky_relu(self.pixel_shuffle(self.upconv1(features, mult)), 0.1)
        if self.scale == 4:
            features = F.leaky_relu(self.pixel_shuffle(self.upconv2(features, mult)), 0.1)
        out = self.conv_last(F.leaky_relu(self.HRconv(features, mult), 0.1), mult)
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


def _info(receptive_radius: int, scales: tuple[int, ...] = (4,)) -> ModelInfo:
    return ModelInfo(
        paper="Chen et al., ARM: Any-Time Super-Resolution Method (ECCV 2022)",
        origin="https://github.com/chenbong/ARM-Net",
        licence="unknown",
        scales=scales,
        size_multiple=1,
        receptive_radius=receptive_radius,
        adaptive="arm",
    )


# FSRCNN: 5x5 head (2) + four 3x3 (4) + the 9x9 transposed conv (~2 LR px).
@register_model(_info(receptive_radius=8))
def arm_fsrcnn(*, scale: int, nf: int = 56, s: int = 12, m: int = 4) -> ArmFSRCNN:
    """ARM-FSRCNN supernet, subnets of width 16 / 36 / 56 (loads ``arm-fsrcnn.pth``)."""
    return ArmFSRCNN(scale=scale, nf=nf, s=s, m=m, widths=(16, 36, nf))


# CARN-M: entry 1 + 3 blocks x 6 stacked 3x3 convs + two upsampling convs + exit: ~22 LR pixels.
@register_model(_info(receptive_radius=24))
def arm_carn(*, scale: int, nf: int = 64, group: int = 4) -> ArmCARN:
    """ARM-CARN supernet (slimmable CARN-M), subnets of width 36 / 52 / 64 (loads ``arm-carn.pth``)."""
    return ArmCARN(scale=scale, nf=nf, group=group, widths=(36, 52, nf))


# SRResNet: conv_first 1 + 16 blocks x 2 + upconv1 1 + (x4) upconv2, HR conv and conv_last at 2x-4x: ~35 LR px.
@register_model(_info(receptive_radius=36, scales=(2, 3, 4)))
def arm_srresnet(*, scale: int, nf: int = 64, nb: int = 16) -> ArmSRResNet:
    """ARM-SRResNet supernet (slimmable MSRResNet), subnets of width 36 / 52 / 64 (no released weights here)."""
    return ArmSRResNet(scale=scale, nf=nf, nb=nb, widths=(36, 52, nf))
