"""ClassSR: a classifier routes each LR sub-image to one of three SR branches of increasing capacity.

Paper: Kong, Zhao, Qiao, Dong, "ClassSR: A General Framework to Accelerate Super-Resolution Networks
by Data Characteristic", CVPR 2021. Official code: XPixelGroup/ClassSR (no licence file),
``codes/models/archs/classSR_{fsrcnn,carn,srresnet}_arch.py`` with the branch networks of
``FSRCNN_arch.py``, ``CARN_arch.py``, ``SRResNet_arch.py`` and ``arch_util.py``; the training and test
loops of ``codes/models/ClassSR_model.py``; the losses of ``codes/models/loss.py``. Module and
parameter names equal the official ones (``classifier.CondNet.*``, ``classifier.lastOut.*``,
``net1.*``, ``net2.*``, ``net3.*``), so an official ``ClassSR_*.pth`` state dict loads strictly.

Structure
---------
* ``classifier`` (the Class-Module, official ``Classifier``): ``CondNet`` = conv 4x4 stride 4 (3 ->
  128), LeakyReLU(0.1), three 1x1 convs 128 -> 128 each followed by LeakyReLU(0.1), a 1x1 conv 128 -> 32;
  global average pooling; ``lastOut`` = Linear(32, 3). It outputs logits; the probabilities are their
  softmax. 60,035 parameters.
* ``net1``, ``net2``, ``net3`` (the SR-Module): the same network at three widths, simple -> hard.

  - ``classsr_fsrcnn``: the ClassSR code's FSRCNN (d = 16 / 36 / 56, s = 12, m = 4; RGB; one shared
    PReLU slope per activation; no activation between the four 3x3 mapping convs, one PReLU after the
    last; 9x9 transposed conv with padding 3, output padding ``scale - 3``). Not srlab's ``fsrcnn``
    (the paper's Y network with padding 4): the same network as ARM's and PCSR's FSRCNN, whose
    ``head_conv`` / ``body_conv`` block (``srlab.models.pcsr.FsrcnnEncoder``) is reused.
  - ``classsr_carn``: the ClassSR code's single-scale CARN-M (nf = 36 / 52 / 64, ``group=4``): its
    cascade fusions are 1x1 conv without bias + BatchNorm + ReLU (``arch_util.BasicBlock`` with its
    defaults), unlike the CARN repository's (conv with bias + ReLU, srlab's ``carn_m``); the features
    are ``srlab.models.pcsr.CarnEncoder`` (the same network), plus the frozen mean shifts
    ``sub_mean`` / ``add_mean`` and one upsampling branch ``upsample.up``.
  - ``classsr_srresnet``: MSRResNet (BasicSR's modified SRResNet: no BatchNorm, 16 residual blocks,
    LeakyReLU(0.1), pixel-shuffle upsampling, a bilinear-upsampled input added to the output) at nf =
    36 / 52 / 64; srlab had no SRResNet before.

Forward
-------
* Training (``model.train()``), the official training forward: every LR patch of the batch goes
  through the classifier and through all three branches, and the output is the probability-weighted sum
  ``p1 * net1(x) + p2 * net2(x) + p3 * net3(x)`` per patch. It returns ``(sr, {"class_probs": p})`` so
  that the objectives see the probabilities (``class_loss``, ``average_loss``: srlab.losses.classsr).
  The official loop runs one patch at a time; here the batch runs at once, which is the same function
  except with BatchNorm in training mode (``classsr_carn``), whose statistics the official loop takes
  over one patch: those branches run patch by patch, as officially.
* Evaluation (``model.eval()``) on an image of any size: the heaviest branch ``net3`` alone (the "full
  path"), so srlab's generic inference (``srlab upscale`` / ``eval``) runs the network ClassSR
  accelerates. The routed inference, patch by patch, is the adaptive method ``classsr``
  (srlab.adaptive.classsr).

Training (three stages, the paper's and the official code's)
------------------------------------------------------------
Data (the official ``data_scripts``): DIV2K 800 training images, each also downscaled by 0.9 / 0.8 / 0.7
/ 0.6 (MATLAB bicubic with antialiasing, 4,000 HR images); modcrop 4 and bicubic x4 LR; HR sub-images of
128x128 with step 64 (LR 32x32, step 16; a last crop flush to the border when more than 48 HR pixels
remain): about 1.59M pairs. The sub-images are divided into three classes by the PSNR (RGB, 8-bit,
border 4) of a reference SR network on them, with the released thresholds 27.16882 / 35.149761 dB
(below: hard, class 3; above: simple, class 1). ``srlab data classsr-split`` does this on a folder of
sub-images (srlab.data.subimages).

1. Pre-train each branch on its class (official ``train_{FSRCNN,CARN,SRResNet}.yml``: L1, batch 16, HR
   patch 128, Adam betas (0.9, 0.99), cosine, 500K iterations; lr 1e-3 FSRCNN, 2e-4 CARN / SRResNet).
2. Train the classifier with the branches fixed (official ``train_ClassSR_*.yml``, ``fix_SR_module:
   true``): ``1000 * L1 + 0.5 * class_loss + 3 * average_loss``, batch 96, HR patch 128, Adam 2e-4
   betas (0.9, 0.99), 200K iterations.
3. Fine-tune everything jointly with the same objective.

The hyper-parameter ``trains`` selects the part a run trains (``srlab train`` configs
``configs/classsr_fsrcnn_stage{1,2,3}.yaml``, chained by ``init_from``): ``"net1"`` / ``"net2"`` /
``"net3"`` (stage 1: that branch alone is trainable, and the forward, training and evaluation, is that
branch alone, so the run validates the branch it trains), ``"classifier"`` (stage 2: the branches'
parameters are frozen, ``requires_grad=False``, and their outputs computed without a graph; like the
official code, BatchNorm branches stay in training mode and keep updating their running statistics) or
``"all"`` (stage 3, the default).

Parameters (all trainable ones, classifier included; the official class measured in paper-results.md
§8b): ``classsr_fsrcnn`` 112,940 (paper 113K), ``classsr_carn`` 645,404 + 72 frozen mean-shift values
= the official 645,476 (paper 645K), ``classsr_srresnet`` 3,062,060 (paper 3.1M). Per 32x32 LR patch,
2 x srlab's MACs (``count_macs``) of the branches are FSRCNN 141.3 / 304.6 / 467.9 M, CARN 380.5 / 771.9 /
1155.2 M, SRResNet 1658.6 / 3438.4 / 5194.4 M, within 0.5 % of the official ``util.cal_FLOPs`` table
(141 / 304 / 468 M, 0.38 / 0.77 / 1.15 G, 1.66 / 3.44 / 5.20 G); the classifier 7.6 M (official 7.4 M).
The state dicts, the training forward (outputs, probabilities, BatchNorm statistics) and the eval
forward were checked once against the official classes on random weights (equal to 6e-8 relative).

Measured here (CPU, one thread; no ClassSR weights are released under a licence, so none are tested)
-----------------------------------------------------------------------------------------------------
Branches from the released ARM-FSRCNN supernet (:func:`fsrcnn_branches_from_arm`; bit-identical to its
subnets), the classifier trained by ``configs/classsr_fsrcnn_stage2.yaml`` for 552 iterations (batch 32)
on 370 sub-images of six scikit-image photos, then routed (srlab.adaptive.classsr, 32x32 patches, stride
28; PSNR-Y of the covered region, border 4; MACs as a share of every patch on net3):

=========  ==================  ==================  ==================  ==========================
set (x4)   k = 0 (official)    k = 0.05            k = 0.1             all net1 / net2 / net3
=========  ==================  ==================  ==================  ==========================
Set5       30.0718 dB, 94.2 %  29.8415 dB, 81.4 %  29.4399 dB, 60.4 %  29.1961 / 29.8797 / 30.0837
Set14      27.4793 dB, 96.0 %  27.3235 dB, 76.6 %  27.1188 dB, 50.5 %  26.7794 / 27.3315 / 27.4936
=========  ==================  ==================  ==================  ==========================

After so short a stage 2 the classifier is barely confident (class loss 1.89 of at most 2), so most
patches go to net3 at k = 0 and the routed points do not beat the static net2 (65.1 % of the MACs);
the official stage 2 runs 200K iterations of 96 patches on DIV2K. The whole pipeline from scratch (three
stage-1 runs, stage 2, stage 3 on the same sub-images, about 5 minutes) runs end to end but leaves the
branches far below bicubic; tests/train/test_classsr_training.py runs it on tinier data.

Deviations from the official code
---------------------------------
* The classifier pools with a global mean (the official ``AvgPool2d(H)`` equals it on the square
  patches it is used on, and fails on non-square inputs).
* The mean shifts of the CARN-M branches are frozen. The official ``MeanShift`` sets
  ``self.requires_grad = False`` on the module, which freezes nothing, so officially those 24 values
  per branch are trained (in stage 1 and 3).
* Scales: the official networks are built for x4 only. ``classsr_carn`` and ``classsr_srresnet`` also
  build x2 and x3 (their upsamplers' official x2 / x3 forms); ``classsr_fsrcnn`` also x3 (output
  padding 0; x2 does not fit its padding of 3). The classifier does not depend on the scale.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.mean_shift import MeanShift
from srlab.models.carn import UpsampleBranch
from srlab.models.pcsr import CarnEncoder, FsrcnnEncoder
from srlab.models.registry import ModelInfo, register_model

#: What the ``trains`` hyper-parameter accepts (see the module docstring).
TRAINED_PARTS = ("all", "classifier", "net1", "net2", "net3")
BRANCHES = ("net1", "net2", "net3")
NUM_CLASSES = 3


def scaled_kaiming_(module: nn.Module, factor: float = 0.1) -> None:
    """The official ``initialize_weights(net, 0.1)``: Kaiming-normal (fan in) weights scaled by
    ``factor`` and zero biases for every Conv2d and Linear inside ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            m.weight.data.mul_(factor)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Classifier(nn.Module):
    """The Class-Module: LR patch -> ``NUM_CLASSES`` logits."""

    def __init__(self) -> None:
        super().__init__()
        self.lastOut = nn.Linear(32, NUM_CLASSES)
        self.CondNet = nn.Sequential(
            nn.Conv2d(3, 128, 4, 4), nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 128, 1), nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 128, 1), nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 128, 1), nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 32, 1),
        )
        scaled_kaiming_(self.CondNet)  # the official init touches CondNet only (lastOut keeps PyTorch's)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastOut(self.CondNet(x).mean(dim=(2, 3)))


class FsrcnnBranch(FsrcnnEncoder):
    """The ClassSR code's ``FSRCNN_net(3, scale, d, 12, 4)``."""

    def __init__(self, *, scale: int, d: int, s: int = 12, m: int = 4) -> None:
        if scale not in (3, 4):
            raise ValueError(f"the ClassSR FSRCNN branch supports scales 3 and 4, not {scale}")
        super().__init__(d, s, m)
        # Output (H - 1) * scale - 6 + 9 + output_padding = scale * H.
        self.tail_conv = nn.ConvTranspose2d(d, 3, 9, stride=scale, padding=3, output_padding=scale - 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail_conv(super().forward(x))


class _SingleScaleUpsample(nn.Module):
    """Official ``UpsampleBlock(multi_scale=False)``: one branch ``up``."""

    def __init__(self, channels: int, scale: int, *, group: int) -> None:
        super().__init__()
        self.up = UpsampleBranch(channels, scale, group=group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class CarnMBranch(CarnEncoder):
    """The ClassSR code's ``CARN_M(3, 3, nf, scale, multi_scale=False, group=4)``."""

    def __init__(self, *, scale: int, nf: int, group: int = 4) -> None:
        if scale not in (2, 3, 4):
            raise ValueError(f"the ClassSR CARN-M branch supports scales 2, 3 and 4, not {scale}")
        super().__init__(nf, group=group)
        self.sub_mean = MeanShift(1.0, sign=-1)
        self.add_mean = MeanShift(1.0, sign=+1)
        self.upsample = _SingleScaleUpsample(nf, scale, group=group)
        self.exit = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = super().forward(self.sub_mean(x))
        return self.add_mean(self.exit(self.upsample(features)))


class ResidualBlockNoBN(nn.Module):
    """x + conv2(relu(conv1(x))) (official ``arch_util.ResidualBlock_noBN``)."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """BasicSR's modified SRResNet (official ``SRResNet_arch.MSRResNet(3, 3, nf, nb, scale)``)."""

    def __init__(self, *, scale: int, nf: int, nb: int = 16) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports scales 2, 3 and 4, not {scale}")
        self.upscale = scale
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.recon_trunk = nn.Sequential(*(ResidualBlockNoBN(nf) for _ in range(nb)))
        self.upconv1 = nn.Conv2d(nf, nf * (9 if scale == 3 else 4), 3, padding=1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(nf, nf * 4, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(3 if scale == 3 else 2)
        self.HRconv = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        scaled_kaiming_(self)  # officially: every conv, the trunk's included

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.recon_trunk(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.HRconv(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class ClassSR(nn.Module):
    """The classifier and three branches ``net1`` (simple) .. ``net3`` (hard); see the module docstring."""

    def __init__(self, *, scale: int, branches: tuple[nn.Module, nn.Module, nn.Module], trains: str) -> None:
        super().__init__()
        if trains not in TRAINED_PARTS:
            raise ValueError(f"trains must be one of {', '.join(TRAINED_PARTS)}, got {trains!r}")
        self.scale = scale
        self.trains = trains
        self.classifier = Classifier()
        self.net1, self.net2, self.net3 = branches
        # Branches with BatchNorm run patch by patch in training, as the official loop does.
        self._per_patch = tuple(_has_batch_norm(net) for net in branches)
        if trains != "all":
            for name, part in self.named_children():
                part.requires_grad_(name == trains)
            # the mean shifts stay frozen whatever is trained
            for m in self.modules():
                if isinstance(m, MeanShift):
                    m.requires_grad_(False)

    @property
    def branches(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        return self.net1, self.net2, self.net3

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) LR patches -> (N, 3) class logits (simple, medium, hard)."""
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.trains in BRANCHES:
            return getattr(self, self.trains)(x)
        if not self.training:
            return self.net3(x)
        probs = F.softmax(self.classifier(x), dim=1)
        sr = sum(probs[:, i, None, None, None] * self._branch_output(i, x) for i in range(NUM_CLASSES))
        return sr, {"class_probs": probs}

    def _branch_output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        net = self.branches[index]
        # Frozen branches (stage 2) need no graph: the probabilities' gradients only need their outputs.
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trains != "classifier"):
            if self._per_patch[index]:
                return torch.cat([net(patch[None]) for patch in x])
            return net(x)


# ARM-FSRCNN tensors whose output channels (first dimension) / input channels (second) are the width d.
_ARM_OUT_SLIMMED = ("head_conv.0.weight", "head_conv.0.bias", "body_conv.6.0.weight", "body_conv.6.0.bias",
                    "tail_conv.weight")
_ARM_IN_SLIMMED = ("body_conv.0.0.weight",)


def fsrcnn_branches_from_arm(arm_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``net1.*`` .. ``net3.*`` of ``classsr_fsrcnn`` x4 from an ARM-FSRCNN supernet's state dict.

    ARM's FSRCNN (chenbong/ARM-Net, srlab's ``arm_fsrcnn``) is the ClassSR code's FSRCNN with slimmable
    widths: its subnet of width d runs the first d channels of every 56-channel tensor, which is exactly
    a ClassSR branch of ``d`` = 16 / 36 / 56. The released supernet (``arm-fsrcnn.pth``) thus gives three
    trained branches (a stage-1 substitute; tests/models/test_classsr.py checks the outputs agree)."""
    weights = {}
    for index, d in enumerate((16, 36, 56), start=1):
        for key, tensor in arm_state.items():
            if key in _ARM_OUT_SLIMMED:
                tensor = tensor[:d]
            elif key in _ARM_IN_SLIMMED:
                tensor = tensor[:, :d]
            weights[f"net{index}.{key}"] = tensor.clone()
    return weights


def _info(receptive_radius: int, scales: tuple[int, ...]) -> ModelInfo:
    return ModelInfo(
        adaptive="classsr",
        paper=(
            "Kong et al., ClassSR: A General Framework to Accelerate Super-Resolution Networks by Data "
            "Characteristic, CVPR 2021"
        ),
        origin="https://github.com/XPixelGroup/ClassSR",
        licence="unknown",
        scales=scales,
        size_multiple=1,
        # of net3, the path the whole-image forward runs
        receptive_radius=receptive_radius,
    )


@register_model(_info(8, (3, 4)))
def classsr_fsrcnn(*, scale: int, trains: str = "all") -> ClassSR:
    """ClassSR-FSRCNN: FSRCNN branches d = 16 / 36 / 56 (official ``classSR_3class_fsrcnn_net``)."""
    return ClassSR(scale=scale, trains=trains, branches=tuple(FsrcnnBranch(scale=scale, d=d) for d in (16, 36, 56)))


@register_model(_info(24, (2, 3, 4)))
def classsr_carn(*, scale: int, trains: str = "all") -> ClassSR:
    """ClassSR-CARN: CARN-M branches nf = 36 / 52 / 64 (official ``classSR_3class_carn``)."""
    return ClassSR(scale=scale, trains=trains, branches=tuple(CarnMBranch(scale=scale, nf=nf) for nf in (36, 52, 64)))


@register_model(_info(36, (2, 3, 4)))
def classsr_srresnet(*, scale: int, trains: str = "all") -> ClassSR:
    """ClassSR-SRResNet: MSRResNet branches nf = 36 / 52 / 64 (official ``classSR_3class_srresnet``)."""
    return ClassSR(scale=scale, trains=trains, branches=tuple(MSRResNet(scale=scale, nf=nf) for nf in (36, 52, 64)))
