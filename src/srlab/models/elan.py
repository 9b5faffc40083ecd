"""ELAN: efficient long-range attention network (ELAN-light and the full ELAN).

Paper: Xindong Zhang, Hui Zeng, Shi Guo, Lei Zhang, "Efficient Long-Range Attention Network for Image
Super-resolution", ECCV 2022. Official code: xindongzhang/ELAN (Apache-2.0), ``models/elan_network.py``
(``ELAN(args)``) with blocks in ``models/elan_block.py`` (re-written in :mod:`srlab.layers.elan`);
configurations ``configs/elan_light_x4.yml`` and ``configs/elan_x4.yml`` (the repository has only the
x4 files; x2/x3 differ in ``scale`` alone). No official weights were released.

Structure (as officially): reflect-pad to a multiple of lcm(window sizes) = 16, MeanShift (subtract
the DIV2K mean), 3x3 head conv, ``m_elan / (1 + n_share)`` ELABs alternating unshifted / shifted
windows, a long skip, 3x3 tail conv + PixelShuffle, MeanShift (add the mean), crop.

Deviations from the official code, none of which changes the function or the state dict:

- Input and output are RGB in [0, 1]: the official network works in [0, 255] (``rgb_range=255``);
  ``forward`` multiplies by 255 and divides the result by 255. The MeanShift 1x1 convs
  (``sub_mean``/``add_mean``) keep their official names and frozen (``requires_grad=False``) weights.
- Inputs too small for reflection padding (a pad of at least the side, e.g. a 5x5 image), where the
  official code fails, are padded by replication instead.
- ``ELAN.load_state_dict`` of the official code is a lenient by-name copy; srlab loads strictly. An
  official training checkpoint ``{'epoch', 'model_state_dict': {'module.…'}, 'optimizer_state_dict', …}``
  loads through ``srlab.create_model(..., checkpoint=...)`` (the wrapper and the DataParallel prefix are
  removed by srlab.models.weights).

Note on tiling: the shifted windows roll cyclically without an attention mask, so pixels within half a
window of the (padded) image border attend to the opposite border. Tiled inference therefore equals
untiled inference only away from the image border, whatever the overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import reduce

import torch
from torch import nn

from srlab.layers.elan import ELAB
from srlab.layers.mean_shift import MeanShift
from srlab.layers.padding import pad_to_multiple
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model

# The official pixel range; its MeanShift layers shift by range x DIV2K_RGB_MEAN (std 1).
RGB_RANGE = 255.0


class ELAN(nn.Module):
    def __init__(
        self,
        *,
        scale: int,
        c_elan: int,
        m_elan: int,
        n_share: int,
        r_expand: int,
        window_sizes: Sequence[int],
        colors: int = 3,
        upsampler: str = "subpixel",
    ) -> None:
        super().__init__()
        if m_elan % (1 + n_share):
            raise ValueError(f"m_elan ({m_elan}) must be a multiple of 1 + n_share ({1 + n_share})")
        self.scale = scale
        self.window_sizes = tuple(window_sizes)
        self.size_multiple = reduce(math.lcm, self.window_sizes)
        self.sub_mean = MeanShift(RGB_RANGE, sign=-1)
        self.add_mean = MeanShift(RGB_RANGE, sign=1)
        self.head = nn.Sequential(nn.Conv2d(colors, c_elan, 3, padding=1))
        self.body = nn.Sequential(
            *(
                # even-numbered blocks use plain windows, odd-numbered ones shifted windows
                ELAB(
                    c_elan,
                    c_elan,
                    exp_ratio=r_expand,
                    shifts=i % 2,
                    window_sizes=self.window_sizes,
                    shared_depth=n_share,
                )
                for i in range(m_elan // (1 + n_share))
            )
        )
        self.tail = image_head(upsampler, in_channels=c_elan, out_channels=colors, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.sub_mean(pad_to_multiple(x, self.size_multiple, "reflect") * RGB_RANGE)
        x = self.head(x)
        x = self.body(x) + x
        x = self.add_mean(self.tail(x))
        return x[..., : h * self.scale, : w * self.scale] / RGB_RANGE


def _receptive_radius(*, m_elan: int, window: int, multiple: int) -> int:
    """Head and tail 3x3 convs, then m_elan (LFE, GMSA) pairs, shared or not: two shift convs (1 px
    each) and a window (size - 1 px) each; rounded up to the size multiple. Ignores the wrap-around at
    the image border (see the module note). ELAN-light: 410 -> 416; ELAN: 614 -> 624."""
    radius = 2 + m_elan * (2 + (window - 1))
    return -(-radius // multiple) * multiple


def _info(paper: str) -> ModelInfo:
    return ModelInfo(
        paper=paper,
        origin="https://github.com/xindongzhang/ELAN",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        size_multiple=16,  # lcm of the window sizes 4, 8, 16; forward pads to it itself
        pad_mode="inside",
        receptive_radius=lambda a: _receptive_radius(m_elan=a["m_elan"], window=16, multiple=16),
        reparameterizable=False,
        # Unscaled Q Q^T logits (no 1/sqrt(d)) on [0, 255]-scale features: with untrained BatchNorm
        # statistics they can exceed float16's range (estimate, not measured on a GPU).
        half_precision_safe=False,
    )


_PAPER = "Zhang et al., Efficient Long-Range Attention Network for Image Super-resolution, ECCV 2022"


@register_model(_info(f"{_PAPER} (ELAN-light)"))
def elan_light(
    *, scale: int, c_elan: int = 60, m_elan: int = 24, n_share: int = 1, r_expand: int = 2,
    upsampler: str = "subpixel",
) -> ELAN:
    """ELAN-light (configs/elan_light_x4.yml): 12 ELABs of 60 channels, each sharing its attention once."""
    return ELAN(
        scale=scale, c_elan=c_elan, m_elan=m_elan, n_share=n_share, r_expand=r_expand, window_sizes=(4, 8, 16),
        upsampler=upsampler,
    )


@register_model(_info(f"{_PAPER} (ELAN)"))
def elan(
    *, scale: int, c_elan: int = 180, m_elan: int = 36, r_expand: int = 2, upsampler: str = "subpixel"
) -> ELAN:
    """The full ELAN (configs/elan_x4.yml): 36 ELABs of 180 channels, no attention sharing.

    ``n_share`` is fixed at the config's 0 rather than exposed: srlab's hyper-parameters are >= 1."""
    return ELAN(
        scale=scale, c_elan=c_elan, m_elan=m_elan, n_share=0, r_expand=r_expand, window_sizes=(4, 8, 16),
        upsampler=upsampler,
    )
