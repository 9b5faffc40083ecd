"""Meta-SR's Meta-Upscale: per output pixel, a small network predicts the filter that maps the LR
features around it to its colour.

Paper: Hu, Mu, Zhang, Wang, Tan and Sun, "Meta-SR: A Magnification-Arbitrary Network for
Super-Resolution", CVPR 2019. Official code: XuecaiHu/Meta-SR-Pytorch (no licence stated),
``model/metardn.py`` (``Pos2Weight``, ``MetaRDN.forward``) and ``trainer.py`` (``input_matrix_wpn``);
the parameter names are theirs (``meta_block.0`` Linear(3, 256), ``meta_block.2`` Linear(256,
k*k*C*out)), so a model that names this module ``P2W`` loads the official checkpoints.

Output pixel (i, j) of an upscaling by ``s`` reads LR pixel (floor(i/s), floor(j/s)) (clamped into
the image when a requested size exceeds ``s`` x the input) and its 3x3 neighbourhood; its filter is
``meta_block(1/s, frac(i/s), frac(j/s))``, viewed as (C*9, out). ``i/s`` is computed as the official
code does, ``float32(i) * float32(1/s)``. The official code evaluates the filters on a ceil(s)-times
grid and discards the unused ones with a mask; here only the kept pixels are computed, band by band of
output rows so memory stays bounded, which is the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.layers.upsamplers.base import register_upsampler
from srlab.layers.upsamplers.liif import output_size

# Filters computed per band of output rows: about 2**24 filter values (64 MiB in float32).
_BAND_FILTER_VALUES = 1 << 24


def _projection(n_out: int, n_in: int, scale: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """The LR index and the fractional offset of each of ``n_out`` output positions along an axis."""
    position = torch.arange(0, n_out, 1, device=device).float().mul(1.0 / scale)
    index = torch.floor(position)
    return index.long().clamp_(max=n_in - 1), position - index


class MetaUpsampler(nn.Module):
    """Meta-Upscale over (N, C, h, w) features -> (N, out, H, W) for a real scale (module docstring)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, scale: float = 2, hidden: int = 256, kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.scale = scale
        self.kernel_size = kernel_size
        self.out_channels = out_channels
        self.meta_block = nn.Sequential(
            nn.Linear(3, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, kernel_size * kernel_size * in_channels * out_channels),
        )

    def forward(self, feat: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        n, c, h, w = feat.shape
        scale = self.scale
        height, width = size if size is not None else output_size(h, w, scale)
        row_index, row_offset = _projection(height, h, scale, feat.device)
        col_index, col_offset = _projection(width, w, scale, feat.device)
        taps = c * self.kernel_size * self.kernel_size
        cols = F.unfold(feat, self.kernel_size, padding=self.kernel_size // 2).view(n, taps, h, w)
        # The filter network's inputs are float32, as in the official code, then the features' dtype.
        row_offset, col_offset = row_offset.to(feat.dtype), col_offset.to(feat.dtype)
        inv_scale = torch.full((1,), 1.0 / scale, device=feat.device).to(feat.dtype)
        band = max(1, _BAND_FILTER_VALUES // (width * taps * self.out_channels))
        rows_out = []
        for top in range(0, height, band):
            rows = slice(top, min(top + band, height))
            k = rows.stop - rows.start
            position = torch.stack(
                [
                    inv_scale.expand(k, width),
                    row_offset[rows, None].expand(k, width),
                    col_offset[None, :].expand(k, width),
                ],
                dim=-1,
            )
            filters = self.meta_block(position.view(-1, 3)).view(k * width, taps, self.out_channels)
            picked = cols[:, :, row_index[rows, None], col_index[None, :]]  # (N, taps, k, W)
            picked = picked.permute(0, 2, 3, 1).reshape(n, k * width, 1, taps)
            out = torch.matmul(picked, filters)  # (N, k*W, 1, out)
            rows_out.append(out.view(n, k, width, self.out_channels))
        return torch.cat(rows_out, dim=1).permute(0, 3, 1, 2).contiguous()


@register_upsampler("meta", reach=lambda options: options["kernel_size"] // 2)  # k x k taps around the source pixel
def meta(*, in_channels: int, out_channels: int, scale: float, hidden: int = 256, kernel_size: int = 3) -> nn.Module:
    """Meta-Upscale: filters predicted from (1/scale, sub-pixel offset) for every output pixel; any real scale."""
    return MetaUpsampler(in_channels, out_channels, scale=scale, hidden=hidden, kernel_size=kernel_size)
