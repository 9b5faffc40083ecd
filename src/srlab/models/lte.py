"""LTE: EDSR-baseline features decoded by a local texture estimator, at any real scale.

Paper: Lee and Jin, "Local Texture Estimator for Implicit Representation Function", CVPR 2022.
Official code: jaewon-lee-b/lte (BSD-3-Clause), ``models/lte.py`` with the encoder ``edsr-baseline``
(``no_upsampling: true``), ``hidden_dim`` 256 and ``imnet`` ``mlp`` [256, 256, 256]
(``configs/train-div2k/train_edsr-baseline-lte.yaml``). Parameter names are the official state
dict's: ``encoder.*`` (the LIIF encoder, :class:`srlab.models.liif.EdsrEncoder`), ``coef``, ``freq``,
``phase`` and ``imnet.layers.*``; the decoder is :mod:`srlab.layers.upsamplers.lte`.

Forward and normalisation as :mod:`srlab.models.liif` (``model(lr, size=None)``, any real
``model.scale`` >= 1, MATLAB's output size by default). The official model adds to the decoded colour
the bilinear upsampling (``grid_sample``, border padding) of its normalised input at the same points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.layers.upsamplers.liif import grid_cells, grid_coords, output_size
from srlab.layers.upsamplers.lte import LteDecoder
from srlab.models.liif import EdsrEncoder, denormalise, normalise
from srlab.models.registry import ModelInfo, register_model


def _bilinear(image: Tensor, coord: Tensor) -> Tensor:
    """(N, C, h, w) sampled bilinearly at (N, Q, 2) points (row, col) -> (N, Q, C)."""
    grid = coord.flip(-1).unsqueeze(1)
    sampled = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[:, :, 0, :].permute(0, 2, 1)


class LteEdsr(LteDecoder):
    """An encoder plus LTE's decoder, whose parameters sit at the top level as in the official model."""

    def __init__(
        self, *, scale: float, channels: int, num_blocks: int, hidden_dim: int, hidden: int, depth: int
    ) -> None:
        super().__init__(channels, 3, scale=scale, hidden_dim=hidden_dim, hidden=(hidden,) * depth)
        self.encoder = EdsrEncoder(channels=channels, num_blocks=num_blocks, res_scale=1.0)

    def query(self, lr: Tensor, coord: Tensor, cell: Tensor) -> Tensor:  # type: ignore[override]
        """RGB in [0, 1] at (N, Q, 2) HR points ``coord`` with ``cell`` sizes -> (N, Q, 3)."""
        x = normalise(lr)
        prepared = self.prepare(self.encoder(x))
        chunk = self.query_chunk
        parts = [
            self.decode(prepared, coord[:, i:i + chunk], cell[:, i:i + chunk]) + _bilinear(x, coord[:, i:i + chunk])
            for i in range(0, coord.shape[1], chunk)
        ]
        return denormalise(torch.cat(parts, dim=1))

    def forward(self, lr: Tensor, size: tuple[int, int] | None = None) -> Tensor:  # type: ignore[override]
        n, _, h, w = lr.shape
        height, width = size if size is not None else output_size(h, w, self.scale)
        coord = grid_coords(height, width, device=lr.device).to(lr.dtype).unsqueeze(0).expand(n, -1, -1)
        rgb = self.query(lr, coord, grid_cells(coord, height, width))
        return rgb.permute(0, 2, 1).reshape(n, -1, height, width)


def _info() -> ModelInfo:
    return ModelInfo(
        paper="Lee and Jin, Local Texture Estimator for Implicit Representation Function (CVPR 2022)",
        origin="https://github.com/jaewon-lee-b/lte",
        licence="BSD-3-Clause",
        scales=(2, 3, 4),
        arbitrary_scale=True,
        # The official query arithmetic nudges coordinates by 1e-6, which half precision cannot hold.
        half_precision_safe=False,
        # 2 convs per block + head + body conv, the coef/freq convs and the ensemble's neighbour.
        receptive_radius=lambda a: 2 * a["num_blocks"] + 4,
    )


@register_model(_info())
def lte_edsr_baseline(
    *, scale: float, channels: int = 64, num_blocks: int = 16, hidden_dim: int = 256, hidden: int = 256, depth: int = 3
) -> LteEdsr:
    """EDSR-baseline-LTE: 16 blocks of 64 channels, hidden_dim 256, an MLP of 3 x 256."""
    return LteEdsr(
        scale=scale, channels=channels, num_blocks=num_blocks, hidden_dim=hidden_dim, hidden=hidden, depth=depth
    )
