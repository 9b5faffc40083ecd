"""Side-by-side comparison images (bicubic | model | ground truth, with a zoomed crop), as in papers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from srlab.fileio import atomic_path


def _to_pil(image: torch.Tensor) -> Image.Image:
    array = image.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def comparison_image(
    panels: list[tuple[str, torch.Tensor]], *, crop: tuple[int, int, int] | None = None, zoom: int | None = None
) -> Image.Image:
    """Lay out equally sized (3,H,W) images in a row, each labelled, with a zoomed crop below.

    ``crop`` is (top, left, side) in image pixels; by default a square around the image centre.
    """
    height, width = panels[0][1].shape[-2:]
    if crop is None:
        side = max(8, min(height, width) // 4)
        crop = ((height - side) // 2, (width - side) // 2, side)
    top, left, side = crop
    zoom = zoom or max(1, width // side)  # by default the zoomed crop is as wide as the image
    zoomed = side * zoom
    label_h, gap = 18, 6
    panel_w = max(width, zoomed)
    canvas = Image.new("RGB", (len(panels) * (panel_w + gap) - gap, label_h + height + gap + zoomed), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (label, image) in enumerate(panels):
        x = index * (panel_w + gap)
        picture = _to_pil(image)
        canvas.paste(picture, (x, label_h))
        draw.rectangle((x + left, label_h + top, x + left + side, label_h + top + side), outline=(255, 0, 0))
        crop_image = picture.crop((left, top, left + side, top + side)).resize((zoomed, zoomed), Image.NEAREST)
        canvas.paste(crop_image, (x, label_h + height + gap))
        draw.text((x + 2, 2), label, fill=(0, 0, 0))
    return canvas


def save_comparison(
    path: str | Path, panels: list[tuple[str, torch.Tensor]], *, crop: tuple[int, int, int] | None = None,
    zoom: int | None = None,
) -> None:
    with atomic_path(path) as tmp:
        comparison_image(panels, crop=crop, zoom=zoom).save(tmp, format="PNG")
