"""LIIF's decoder: a local implicit image function that renders features at any output size.

Paper: Chen, Liu and Wang, "Learning Continuous Image Representation with Local Implicit Image
Function", CVPR 2021. Official code: yinboc/liif (BSD-3-Clause), ``models/liif.py``, ``models/mlp.py``,
``utils.py`` (``make_coord``); parameter names are theirs (``imnet.layers.{0,2,4,...}``).

An output pixel is a query point ``coord`` in [-1, 1]^2 (row, column) with its ``cell`` size. For each
of the four LR feature vectors around it (local ensemble: the query shifted by +-1 LR radius, then the
nearest feature), the MLP ``imnet`` maps (the 3x3-unfolded feature, the offset from that feature's
centre and the cell, both in LR pixels) to a colour; the four colours are blended with the area of the
rectangle between the query and the *opposite* feature centre. The arithmetic below follows the
official code operation by operation (nearest ``grid_sample``, the 1e-6 shift and clamp, the area
swap), so the same weights give the same numbers.

``forward(feat, size=None)`` renders the whole output grid ``size`` (default: MATLAB's output size
``ceil(scale * h) x ceil(scale * w)``); ``query(feat, coord, cell)`` renders given points (training on
sampled HR pixels). Queries go through the MLP ``query_chunk`` at a time, like the official test's
``eval_bsize``, so memory stays bounded at large scales.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.layers.upsamplers.base import register_upsampler

# The official local ensemble: shifts of -1/+1 LR radius per axis, nudged by 1e-6 off cell borders.
_SHIFTS = (-1, 1)
_EPS_SHIFT = 1e-6


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """MATLAB's ``imresize`` output size for ``scale``: ``ceil(scale * H) x ceil(scale * W)``."""
    return math.ceil(scale * height), math.ceil(scale * width)


def cell_centres(n: int, *, device: torch.device | None = None) -> Tensor:
    """The centres of ``n`` equal cells spanning [-1, 1], in float32 (the official ``make_coord``)."""
    radius = 2 / (2 * n)
    return (-1 + radius) + (2 * radius) * torch.arange(n, device=device).float()


def grid_coords(height: int, width: int, *, device: torch.device | None = None) -> Tensor:
    """(height * width, 2) centres of an output grid, (row, column), row-major."""
    rows, cols = torch.meshgrid(
        cell_centres(height, device=device), cell_centres(width, device=device), indexing="ij"
    )
    return torch.stack([rows, cols], dim=-1).view(-1, 2)


def grid_cells(coord: Tensor, height: int, width: int) -> Tensor:
    """The cell size (2/H, 2/W) of every query of an H x W output grid, shaped like ``coord``."""
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / height
    cell[..., 1] *= 2 / width
    return cell


def sample_nearest(x: Tensor, coord: Tensor) -> Tensor:
    """(N, C, h, w) sampled at (N, Q, 2) points (row, col in [-1, 1]) -> (N, Q, C), nearest cell."""
    grid = coord.flip(-1).unsqueeze(1)
    return F.grid_sample(x, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(0, 2, 1)


def feature_centres(feat: Tensor) -> Tensor:
    """(N, 2, h, w): the (row, col) centre of every feature cell, in [-1, 1]."""
    n, _, h, w = feat.shape
    rows, cols = torch.meshgrid(
        cell_centres(h, device=feat.device), cell_centres(w, device=feat.device), indexing="ij"
    )
    return torch.stack([rows, cols]).to(feat.dtype).unsqueeze(0).expand(n, 2, h, w)


def ensemble_queries(feat_shape: tuple[int, int], coord: Tensor, centres: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield, for each of the four local-ensemble neighbours: the shifted query (to sample features
    at) and the query's offset from that neighbour's centre, in LR pixels (the official arithmetic)."""
    h, w = feat_shape
    radius_h, radius_w = 2 / h / 2, 2 / w / 2
    for vx in _SHIFTS:
        for vy in _SHIFTS:
            shifted = coord.clone()
            shifted[:, :, 0] += vx * radius_h + _EPS_SHIFT
            shifted[:, :, 1] += vy * radius_w + _EPS_SHIFT
            shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
            rel_coord = coord - sample_nearest(centres, shifted)
            rel_coord[:, :, 0] *= h
            rel_coord[:, :, 1] *= w
            yield shifted, rel_coord


def blend(preds: list[Tensor], rel_coords: list[Tensor]) -> Tensor:
    """The local ensemble: each prediction weighted by the area opposite its neighbour."""
    areas = [torch.abs(rc[:, :, 0] * rc[:, :, 1]) + 1e-9 for rc in rel_coords]
    total = torch.stack(areas).sum(dim=0)
    areas = [areas[3], areas[2], areas[1], areas[0]]  # the diagonal neighbour's area weighs each
    out = 0
    for pred, area in zip(preds, areas):
        out = out + pred * (area / total).unsqueeze(-1)
    return out


class MLP(nn.Module):
    """The official ``mlp``: Linear + ReLU per hidden width, then a Linear to ``out_dim``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.ReLU()]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def render(decoder: nn.Module, feat: Tensor, size: tuple[int, int] | None, scale: float) -> Tensor:
    """Decode a whole output grid (``size``, default MATLAB's for ``scale``) -> (N, out, H, W).

    ``decoder.prepare(feat)`` runs once; ``decoder.decode`` takes ``decoder.query_chunk`` queries at a time.
    """
    n, _, h, w = feat.shape
    height, width = size if size is not None else output_size(h, w, scale)
    coord = grid_coords(height, width, device=feat.device).to(feat.dtype).unsqueeze(0).expand(n, -1, -1)
    cell = grid_cells(coord, height, width)
    prepared, chunk = decoder.prepare(feat), decoder.query_chunk
    parts = [
        decoder.decode(prepared, coord[:, i:i + chunk], cell[:, i:i + chunk]) for i in range(0, coord.shape[1], chunk)
    ]
    return torch.cat(parts, dim=1).permute(0, 2, 1).reshape(n, -1, height, width)


class LiifDecoder(nn.Module):
    """LIIF's query head ``imnet`` over an encoder's features (see the module docstring)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        scale: float = 2,
        hidden: tuple[int, ...] = (256, 256, 256, 256),
        query_chunk: int = 30000,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.query_chunk = query_chunk
        # unfolded 3x3 feature + relative coordinate (2) + relative cell (2)
        self.imnet = MLP(in_channels * 9 + 4, out_channels, hidden)

    def query(self, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """(N, C, h, w) features at (N, Q, 2) query points with (N, Q, 2) cells -> (N, Q, out)."""
        return self.decode(self.prepare(feat), coord, cell)

    def prepare(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        """What every query reads: the 3x3-unfolded features and the feature centres."""
        n, c, h, w = feat.shape
        return F.unfold(feat, 3, padding=1).view(n, c * 9, h, w), feature_centres(feat)

    def decode(self, prepared: tuple[Tensor, Tensor], coord: Tensor, cell: Tensor) -> Tensor:
        unfolded, centres = prepared
        h, w = unfolded.shape[-2:]
        rel_cell = cell.clone()
        rel_cell[:, :, 0] *= h
        rel_cell[:, :, 1] *= w
        preds, rel_coords = [], []
        for shifted, rel_coord in ensemble_queries((h, w), coord, centres):
            inp = torch.cat([sample_nearest(unfolded, shifted), rel_coord, rel_cell], dim=-1)
            preds.append(self.imnet(inp))
            rel_coords.append(rel_coord)
        return blend(preds, rel_coords)

    def forward(self, feat: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        return render(self, feat, size, self.scale)


@register_upsampler("liif", reach=2)  # the 3x3-unfolded feature of each of the 4 nearest LR pixels
def liif(*, in_channels: int, out_channels: int, scale: float, hidden: int = 256, depth: int = 4) -> nn.Module:
    """LIIF: an MLP (``depth`` hidden layers of ``hidden``) queried at every output pixel; any real scale."""
    return LiifDecoder(in_channels, out_channels, scale=scale, hidden=(hidden,) * depth)
