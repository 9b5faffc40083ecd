"""CAR's adaptive grid sampler (Sun & Chen, TIP 2020), in portable PyTorch.

The official resampler is a CUDA kernel (sunwj/CAR ``adaptive_gridsampler/adaptive_gridsampler_kernel.cu``,
commit 05b2277). For an HR image of H x W and a factor s, every LR pixel (i, j) is a weighted sum of k x k
bilinear samples of the HR image, reflection-padded by p = k // 2 on every side: tap (ky, kx) samples
the padded image at

    x = (j + 0.5) / W_lr * W + kx + u * dx[ky*k + kx, i, j] - 0.5
    y = (i + 0.5) / H_lr * H + ky + u * dy[ky*k + kx, i, j] - 0.5

(u: the offset unit, s in the official code; dx, dy: the predicted horizontal and vertical offsets in
[-1, 1]) and the samples are summed with the predicted weights ``kernels[ky*k + kx, i, j]``. The centre
tap (kx = ky = p) with zero offsets lands on the centre of the s x s block the LR pixel covers.

The bilinear sample is the kernel's, not ``grid_sample``'s: the left and top indices are
``clamp(floor(x))``, the right and bottom ones ``clamp(left + 1)``, and the weights come from the
unclamped fraction ``x - floor(x)``. Past the padded border this differs from a border-clamped bilinear
(at x = -0.3 the kernel mixes columns 0 and 1), so the indices are gathered here exactly as the kernel
computes them. Autograd differentiates the same expression the official backward kernel writes by hand
(weights, and offsets through the fractions; floor has no gradient). That kernel is not wired up in the
official ``gridsampler.py`` (its backward raises), and it skips the LR columns at or past the LR height
(``idx >= dim_h``, a bounds typo) on wide images; autograd has no such gap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adaptive_resample(
    image: torch.Tensor, kernels: torch.Tensor, offsets_h: torch.Tensor, offsets_v: torch.Tensor, *,
    offset_unit: float, scale: int,
) -> torch.Tensor:
    """Downscale ``image`` (B, C, H, W) by ``scale`` with per-pixel ``kernels`` and offsets (B, k*k, H/s, W/s)."""
    b, c, h, w = image.shape
    taps, out_h, out_w = kernels.shape[1:]
    k = round(taps**0.5)
    if k * k != taps or (out_h, out_w) != (h // scale, w // scale):
        raise ValueError(
            f"kernels of shape {tuple(kernels.shape)} do not fit an image of {h}x{w} downscaled by {scale}: "
            f"expected (B, k*k, {h // scale}, {w // scale})"
        )
    pad = k // 2
    padded = F.pad(image, (pad, pad, pad, pad), mode="reflect")
    padded_h, padded_w = h + 2 * pad, w + 2 * pad
    x = _positions(out_w, w, k, image, along_x=True) + offsets_h * offset_unit
    y = _positions(out_h, h, k, image, along_x=False) + offsets_v * offset_unit
    left, alpha = _corner(x, padded_w)
    top, beta = _corner(y, padded_h)
    right = (left + 1).clamp(max=padded_w - 1)
    bottom = (top + 1).clamp(max=padded_h - 1)
    flat = padded.reshape(b, c, padded_h * padded_w)

    def gather(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        index = (rows * padded_w + cols).reshape(b, 1, -1).expand(b, c, -1)
        return flat.gather(2, index).reshape(b, c, taps, out_h, out_w)

    alpha, beta = alpha.unsqueeze(1), beta.unsqueeze(1)
    samples = ((1 - alpha) * (1 - beta) * gather(top, left) + alpha * (1 - beta) * gather(top, right)
               + (1 - alpha) * beta * gather(bottom, left) + alpha * beta * gather(bottom, right))
    return (samples * kernels.unsqueeze(1)).sum(dim=2)


def _positions(out_len: int, in_len: int, k: int, like: torch.Tensor, *, along_x: bool) -> torch.Tensor:
    """The offset-free sampling positions of every tap, (1, k*k, H_lr, 1) or (1, k*k, 1, W_lr), computed in
    float32 as the kernel does."""
    centre = (torch.arange(out_len, dtype=torch.float32, device=like.device) + 0.5) / out_len * in_len
    tap = torch.arange(k, dtype=torch.float32, device=like.device)
    tap_of_index = tap.repeat(k) if along_x else tap.repeat_interleave(k)  # tap ky*k + kx
    grid = centre.view(1, 1, -1) + tap_of_index.view(1, -1, 1) - 0.5
    return (grid.unsqueeze(2) if along_x else grid.unsqueeze(3)).to(like.dtype)


def _corner(position: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's clamped left (top) index and the unclamped fraction of ``position``."""
    floor = torch.floor(position)
    return floor.long().clamp(0, length - 1), position - floor
