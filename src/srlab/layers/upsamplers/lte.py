"""LTE's decoder: a local texture estimator that renders features at any output size.

Paper: Lee and Jin, "Local Texture Estimator for Implicit Representation Function", CVPR 2022.
Official code: jaewon-lee-b/lte (BSD-3-Clause), ``models/lte.py``; parameter names are theirs
(``coef``, ``freq``: 3x3 convs to ``hidden``; ``phase``: Linear(2, hidden / 2) without bias;
``imnet.layers.*``).

Per query and per local-ensemble neighbour (the same sampling and area blend as LIIF,
:mod:`srlab.layers.upsamplers.liif`): the neighbour's ``freq`` vector, read as hidden/2 2-D
frequencies, is dotted with the query's offset in LR pixels, the ``phase`` of the cell is added, and
``cos``/``sin`` of pi times that, multiplied by the neighbour's ``coef`` amplitudes, is the MLP's input.
The official model adds a bilinear upsampling of its input image to the blend; that skip needs the
image, so the model adds it (see :mod:`srlab.models.lte`), not this head.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from srlab.layers.upsamplers.base import register_upsampler
from srlab.layers.upsamplers.liif import MLP, blend, ensemble_queries, feature_centres, render, sample_nearest


class LteDecoder(nn.Module):
    """LTE's estimator (``coef``, ``freq``, ``phase``) and ``imnet`` over an encoder's features."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        scale: float = 2,
        hidden_dim: int = 256,
        hidden: tuple[int, ...] = (256, 256, 256),
        query_chunk: int = 30000,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.query_chunk = query_chunk
        self.coef = nn.Conv2d(in_channels, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(in_channels, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = MLP(hidden_dim, out_channels, hidden)

    def query(self, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """(N, C, h, w) features at (N, Q, 2) query points with (N, Q, 2) cells -> (N, Q, out)."""
        return self.decode(self.prepare(feat), coord, cell)

    def prepare(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """What every query reads: the amplitude and frequency maps and the feature centres."""
        return self.coef(feat), self.freq(feat), feature_centres(feat)

    def decode(self, prepared: tuple[Tensor, Tensor, Tensor], coord: Tensor, cell: Tensor) -> Tensor:
        coef, freq, centres = prepared
        h, w = coef.shape[-2:]
        rel_cell = cell.clone()
        rel_cell[:, :, 0] *= h
        rel_cell[:, :, 1] *= w
        phase = self.phase(rel_cell)
        preds, rel_coords = [], []
        for shifted, rel_coord in ensemble_queries((h, w), coord, centres):
            q_coef, q_freq = sample_nearest(coef, shifted), sample_nearest(freq, shifted)
            # (N, Q, 2, hidden/2) frequencies dotted with the (N, Q, 2) offset
            q_freq = torch.stack(torch.split(q_freq, 2, dim=-1), dim=-1)
            q_freq = torch.sum(q_freq * rel_coord.unsqueeze(-1), dim=-2)
            q_freq = q_freq + phase
            q_freq = torch.cat((torch.cos(math.pi * q_freq), torch.sin(math.pi * q_freq)), dim=-1)
            preds.append(self.imnet(q_coef * q_freq))
            rel_coords.append(rel_coord)
        return blend(preds, rel_coords)

    def forward(self, feat: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        return render(self, feat, size, self.scale)


@register_upsampler("lte", reach=2)  # 3x3 convs on the features, read at the 4 nearest LR pixels
def lte(
    *, in_channels: int, out_channels: int, scale: float, hidden_dim: int = 256, hidden: int = 256, depth: int = 3
) -> nn.Module:
    """LTE: a Fourier-feature estimator and an MLP (``depth`` x ``hidden``) per output pixel; any real scale."""
    return LteDecoder(in_channels, out_channels, scale=scale, hidden_dim=hidden_dim, hidden=(hidden,) * depth)
