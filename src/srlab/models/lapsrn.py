"""LapSRN: the Laplacian pyramid super-resolution network (CVPR 2017 form).

Paper: Lai, Huang, Ahuja and Yang, "Deep Laplacian Pyramid Networks for Fast and Accurate
Super-Resolution", CVPR 2017. Official code: phoenix104104/LapSRN (MIT), MATLAB/MatConvNet; the
network is built in ``init_LapSRN.m`` / ``init_LapSRN_model.m`` (options in ``init_opts.m``: 3x3
convolutions, 64 channels, leaky ReLU 0.2) and applied in ``SR_LapSRN.m``. The released weights
(``LapSRN_x{2,4,8}.mat``) are MatConvNet DagNN files; no PyTorch weights exist.

Structure (followed from the official DagNN): ``input_conv`` (3x3, 1 -> 64) + leaky ReLU, then one
pyramid level per factor of two, from the coarsest (``level{L}``, L = log2(scale)) to the finest
(``level1``). Each level has its OWN (unshared) parameters:

* feature extraction: ``level{s}_conv{d}``, d = 1..depth (3x3, 64 -> 64, leaky ReLU), then
  ``level{s}_upconv``, a 3x3 transposed convolution with stride 2 (MatConvNet ``crop = [0 1 0 1]``:
  the full 2H+1 output loses its last row and column) + leaky ReLU, whose output feeds the next level;
* residual prediction: ``level{s}_residual_conv`` (3x3, 64 -> 1) on the upsampled features;
* image reconstruction: ``level{s}_img_up``, a 4x4 stride-2 transposed convolution (crop 1 on every
  side, no bias, initialised to the bilinear kernel) of the previous level's output (the LR input at
  the coarsest level), plus the residual, gives ``level{s}_output``.

Parameter names equal the official DagNN parameter names with ``_f``/``_b`` turned into
``.weight``/``.bias`` (``level2_conv7_f`` -> ``level2_conv7.weight``), so a converted ``.mat`` loads
1:1 (MatConvNet stores conv filters as H x W x in x out and transposed-conv filters as
H x W x out x in: permute to PyTorch's layouts when converting).

Colour handling as ``SR_LapSRN.m``: the RGB input in [0, 1] is converted to BT.601 YCbCr (MATLAB
``rgb2ycbcr``), the network runs on the LR Y channel (in [0, 1]), Cb/Cr are upscaled with MATLAB
bicubic and the result is converted back to RGB (unclamped). Only the final (``level1``) output is
returned; the intermediate pyramid outputs serve the multi-level training loss.

Parameter counts with ``depth=10`` (the depth that reproduces both published figures, 813K and
149.4 G): all parameters 407,441 / 814,242 / 1,221,043 at x2 / x4 / x8. The efficiency tables'
"813K" (CARN, SMSR, SAFMN) counts convolution weights only, as the same tables do for VDSR
(665K = 664,704 weights) and DRCN: 812,768 at x4
(406,672 at x2, 1,218,864 at x8; the tables print the x4 figure on their x2 rows too), so
``ModelInfo.uncounted_parameters`` leaves out the biases. IMDN's "251K" is reproduced by ONE level
(x2) with ``depth=5`` and a 4x4 feature up-convolution (``up_kernel=4``, the kernel of the widely
copied PyTorch port twtygqyy/pytorch-LapSRN): 251,024 weights (251,473 with biases); no official model
has that form. (That port's own x4 network, depth 10 with 4x4 up-convolutions and no biases, has
870,112 weights, so the 813K figure is the official 3x3 form.)
MACs (``srlab.models.complexity.macs_720p``, transposed convolutions counted per output pixel): x2 / x4 /
x8 119.66 / 149.46 / 156.92 G. The counter sees the 3x3 feature up-convolution's full (2H+1)x(2W+1)
output before the MatConvNet crop; per cropped output pixel the counts are 119.59 / 149.35 / 156.79 G,
so x4 matches the published 149.4 G. The published x2 "29.9 G" is four times too small: it is the x2
model's count for a 180x320 input (a 640x360 output, 29.90 G), i.e. x2 evaluated at x4's LR size.

Deviations: none in the network; the MATLAB ``imresize`` fallback in ``SR_LapSRN.m`` for a size
mismatch never triggers here (the pyramid always outputs exactly scale x the input size).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.models.registry import ModelInfo, register_model

_LEAK = 0.2


def _bilinear_kernel(size: int) -> torch.Tensor:
    """The (size x size) bilinear up-sampling kernel (the official ``bilinear_kernel.m`` init)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return torch.outer(taps, taps).float()


def _up_conv(in_channels: int, out_channels: int, kernel_size: int, *, bias: bool) -> nn.ConvTranspose2d:
    """A stride-2 transposed convolution; :func:`_crop_up` crops its output as MatConvNet does.

    (A plain ``nn.ConvTranspose2d``, not a subclass, so that ``srlab.models.complexity`` counts it.)
    """
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2, bias=bias)


def _crop_up(layer: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """Apply ``layer`` and crop like MatConvNet's ``ConvTranspose('crop', ...)``: the full output
    (2H - 2 + k) loses ``(k - 2) // 2`` leading and the other ``k - 2 - that`` trailing rows and
    columns, which leaves exactly 2H (k = 3: crop [0 1], k = 4: [1 1], k = 5: [1 2])."""
    k = layer.kernel_size[0]
    lead, trail = (k - 2) // 2, k - 2 - (k - 2) // 2
    y = layer(x)
    h, w = y.shape[-2:]
    return y[..., lead : h - trail, lead : w - trail]


class LapSRN(nn.Module):
    def __init__(self, *, scale: int, channels: int, depth: int, up_kernel: int) -> None:
        super().__init__()
        levels = round(math.log2(scale))
        if scale < 2 or 2**levels != scale:
            raise ValueError(f"LapSRN needs a power-of-two scale, got {scale}")
        if up_kernel < 2:
            raise ValueError(f"up_kernel must be >= 2, got {up_kernel}")
        self.scale = scale
        self.levels = levels
        self.depth = depth
        self.input_conv = nn.Conv2d(1, channels, 3, padding=1)
        # Registration order = the official DagNN's: the feature branch of every level (coarsest
        # first), then the image branch of every level.
        for s in range(levels, 0, -1):
            for d in range(1, depth + 1):
                self.add_module(f"level{s}_conv{d}", nn.Conv2d(channels, channels, 3, padding=1))
            self.add_module(f"level{s}_upconv", _up_conv(channels, channels, up_kernel, bias=True))
            self.add_module(f"level{s}_residual_conv", nn.Conv2d(channels, 1, 3, padding=1))
        for s in range(levels, 0, -1):
            img_up = _up_conv(1, 1, 4, bias=False)
            with torch.no_grad():
                img_up.weight.copy_(_bilinear_kernel(4).view(1, 1, 4, 4))
            self.add_module(f"level{s}_img_up", img_up)

    def pyramid(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of every level, coarsest (x2) first, for a Y-channel input."""
        features = F.leaky_relu(self.input_conv(y), _LEAK)
        image = y
        outputs = []
        for s in range(self.levels, 0, -1):
            for d in range(1, self.depth + 1):
                features = F.leaky_relu(getattr(self, f"level{s}_conv{d}")(features), _LEAK)
            features = F.leaky_relu(_crop_up(getattr(self, f"level{s}_upconv"), features), _LEAK)
            residual = getattr(self, f"level{s}_residual_conv")(features)
            image = _crop_up(getattr(self, f"level{s}_img_up"), image) + residual
            outputs.append(image)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ycbcr = rgb_to_ycbcr(x)
        y = self.pyramid(ycbcr[:, :1])[-1]
        cbcr = bicubic_upscale(ycbcr[:, 1:], self.scale)
        return ycbcr_to_rgb(torch.cat((y, cbcr), dim=1))


@register_model(
    ModelInfo(
        paper=(
            "Lai et al., Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution "
            "(CVPR 2017)"
        ),
        origin="https://github.com/phoenix104104/LapSRN",
        licence="MIT",
        scales=(2, 4, 8),
        size_multiple=1,
        # In LR pixels at x8: input conv 1 + the coarsest level's depth (10) convs + up-conv 1 (12); the
        # finer levels add 11/2 + 11/4 (+ residual convs and the bilinear image branch, < 2): < 22
        # = 2 * depth + 2; 26 leaves a margin.
        receptive_radius=lambda a: 2 * (a["depth"] + 3),
        reparameterizable=False,
        half_precision_safe=True,
        # The papers' tables count convolution weights only (813K = 812,768 at x4): see the docstring.
        uncounted_parameters=("bias",),
    )
)
def lapsrn(*, scale: int, channels: int = 64, depth: int = 10, up_kernel: int = 3) -> LapSRN:
    """LapSRN (CVPR 2017) as released: depth 10 per level, unshared levels (812,768 weights at x4)."""
    return LapSRN(scale=scale, channels=channels, depth=depth, up_kernel=up_kernel)
