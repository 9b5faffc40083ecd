"""DRCN: the deeply-recursive convolutional network.

Paper: Kim, Lee and Lee, "Deeply-Recursive Convolutional Network for Image Super-Resolution",
CVPR 2016. The authors released MATLAB test code and models on their project page (no training code,
no licence stated, no PyTorch weights), so there are no official PyTorch parameter names. The names
here follow the paper's three sub-networks (§3.1): ``embedding`` (f1), ``inference`` (f2, the one
recursive layer) and ``reconstruction`` (f3), plus ``ensemble_weight`` (the w_d of eq. 7). The best
known PyTorch port, togheppi/pytorch-super-resolution-model-collection ``drcn.py`` (no LICENSE
file), has the same layers under other names (``embedding_layer.{0,1}.conv``, ``conv_block.conv``,
``reconstruction_layer.{0,1}.conv``) but keeps its ensemble weights outside the module (a plain
tensor, never saved or trained), so it was not followed.

Structure (the paper's advanced model, recursive supervision + skip connection), all convolutions
3x3 with 256 channels and zero padding:

* embedding net: conv (1 -> 256) + ReLU, conv (256 -> 256) + ReLU gives H_0;
* inference net: ONE conv (256 -> 256) + ReLU applied recursively D = 16 times with shared weights,
  H_d = relu(W * H_{d-1} + b);
* reconstruction net (shared by every recursion): conv (256 -> 256) + ReLU, conv (256 -> 1), plus the
  skip connection: y_d = x + f3(H_d);
* output: y = sum_d w_d * y_d with the D learned weights w_d (initialised to 1/D; the paper does not
  normalise them, eq. 7).

The 20 convolution layers on the path of the last prediction give the paper's 41x41 receptive field.

Colour handling as the authors' demo (and ``srcnn.py``): the RGB input in [0, 1] is upscaled with
MATLAB's bicubic kernel (float), converted to BT.601 YCbCr (MATLAB ``rgb2ycbcr``), the network runs on
Y (in [0, 1]) and the result is recombined with the bicubic Cb/Cr and converted back to RGB.

Parameter count: 1,775,121 in all; the published "1,774K" (SMSR, IMDN, CARN tables) counts
convolution weights only, as the same tables do for VDSR (665K = 664,704 weights): 1,774,080 weights
+ the 16 ensemble weights = 1,774,096 (``ModelInfo.uncounted_parameters`` leaves out the biases).
MACs (``srlab.models.complexity.macs_720p``, x2): 17,974.3 G, CARN's figure, which runs the reconstruction
net for all 16 intermediate predictions; SMSR's 9,788.7 G is the count with ONE reconstruction
(the last recursion only), 10,621,440 MACs per HR pixel x 921,600 pixels.

Deviation: the paper's equations end f3 with a ReLU; with the skip connection f3 predicts a signed
residual, so the last convolution is linear here (as in every port).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.data.resize import bicubic_upscale
from srlab.metrics.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.models.registry import ModelInfo, register_model


class DRCN(nn.Module):
    def __init__(self, *, scale: int, channels: int, recursions: int) -> None:
        super().__init__()
        self.scale = scale
        self.recursions = recursions
        self.embedding = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.inference = nn.Conv2d(channels, channels, 3, padding=1)
        self.reconstruction = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 1, 3, padding=1),
        )
        self.ensemble_weight = nn.Parameter(torch.full((recursions,), 1.0 / recursions))

    def predictions(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The D intermediate predictions y_d = y + f3(H_d) for a Y-channel input (recursive supervision)."""
        h = self.embedding(y)
        outputs = []
        for _ in range(self.recursions):
            h = F.relu(self.inference(h))
            outputs.append(y + self.reconstruction(h))
        return outputs

    def ensemble(self, y: torch.Tensor) -> torch.Tensor:
        """The final prediction: the learned weighted sum of the intermediate ones (eq. 7)."""
        out = torch.zeros_like(y)
        for w, pred in zip(self.ensemble_weight, self.predictions(y)):
            out = out + w * pred
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ycbcr = rgb_to_ycbcr(bicubic_upscale(x, self.scale))
        y = self.ensemble(ycbcr[:, :1])
        return ycbcr_to_rgb(torch.cat((y, ycbcr[:, 1:]), dim=1))


@register_model(
    ModelInfo(
        paper="Kim et al., Deeply-Recursive Convolutional Network for Image Super-Resolution (CVPR 2016)",
        # The authors' project page (MATLAB test code and models, no licence stated).
        origin="https://cv.snu.ac.kr/research/DRCN/",
        licence="unknown",
        scales=(2, 3, 4),
        size_multiple=1,
        # 2 embedding + the recursions + 2 reconstruction convolutions of radius 1 = 20 HR pixels (10 LR
        # pixels at x2) plus the bicubic kernel's 2.
        receptive_radius=lambda a: -(-(a["recursions"] + 4) // 2) + 2,
        reparameterizable=False,
        half_precision_safe=True,
        # The papers' tables count weights only (1,774K = 1,774,080 conv weights + 16 w_d).
        uncounted_parameters=("bias",),
    )
)
def drcn(*, scale: int, channels: int = 256, recursions: int = 16) -> DRCN:
    """DRCN with 16 recursions on the bicubic-upscaled Y channel (1,774,096 weights, 1,775,121 in all)."""
    return DRCN(scale=scale, channels=channels, recursions=recursions)
