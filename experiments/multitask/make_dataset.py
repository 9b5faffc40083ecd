"""Build the small labelled set of the multi-task experiment from images that packages ship.

    python experiments/multitask/make_dataset.py OUT [--size 192] [--train 16] [--val 6]

writes ``OUT/train/<category>/*.png`` and ``OUT/val/<category>/*.png`` (the layout of ``data.labels:
folders``) for three categories:

- ``photo``: crops of scikit-image's sample photographs; the validation crops come from other photographs
  than the training crops (train: astronaut, coffee, rocket, hubble_deep_field, immunohistochemistry,
  camera, grass, brick; val: chelsea, gravel, moon);
- ``text``: words rendered with the font Pillow ships (``ImageFont.load_default(size)``) in several sizes,
  weights and ink colours on paper-like backgrounds (tinted, grainy, with a gentle shading), plus crops
  of scikit-image's scanned ``page`` (train) and ``text`` (val);
- ``drawing``: line art drawn programmatically (Bezier strokes of varying width, ellipses, polygons
  filled with manga-like screen tones or hatching), and the outline of scikit-image's ``horse``.

No face category: the packages ship one usable face (scikit-image's astronaut) and ``lfw_subset``'s 25x25
grey thumbnails, far too few and too small for HR images.

Everything is drawn from a seeded generator: the same command writes the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFilter, ImageFont

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "grass",
                "brick")
VAL_PHOTOS = ("chelsea", "gravel", "moon")
WORDS = (
    "the quick brown fox jumps over lazy dog image super resolution network pixel detail edge texture "
    "chapter page line paper ink letter word sentence story reader market river mountain window garden "
    "morning evening silver golden number table figure result method training sample model layer scale "
    "harbour station village summer winter signal market north south coffee rocket planet"
).split()


def _rgb(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).convert("RGB")


def photo_crops(names: tuple[str, ...], count: int, size: int, rng: np.random.Generator) -> list[Image.Image]:
    """``count`` random crops, cycling through the photographs ``names``."""
    crops = []
    for i in range(count):
        image = _rgb(getattr(skimage.data, names[i % len(names)])())
        left = int(rng.integers(0, image.width - size + 1))
        top = int(rng.integers(0, image.height - size + 1))
        crops.append(image.crop((left, top, left + size, top + size)))
    return crops


def paper(size: int, rng: np.random.Generator) -> Image.Image:
    """An off-white, slightly tinted, grainy sheet with a gentle shading from one side."""
    tint = np.array([rng.uniform(228, 250), rng.uniform(222, 246), rng.uniform(205, 240)])
    shading = np.linspace(0, rng.uniform(-14, 6), size)[None, :, None]
    grain = rng.normal(0, rng.uniform(1.0, 4.0), (size, size, 1))
    return Image.fromarray(np.clip(tint + shading + grain, 0, 255).astype(np.uint8))


def text_page(size: int, rng: np.random.Generator) -> Image.Image:
    """Lines of random words in one font size, weight and ink per image."""
    image = paper(size, rng)
    draw = ImageDraw.Draw(image)
    font_size = int(rng.choice([9, 11, 13, 16, 20, 26]))
    font = ImageFont.load_default(size=font_size)
    ink = tuple(int(v) for v in rng.choice([[20, 20, 24], [40, 36, 30], [20, 30, 90], [110, 20, 20]]))
    bold = int(rng.random() < 0.3)
    y = int(rng.integers(-font_size // 2, font_size))
    while y < size:
        x = int(rng.integers(-20, 6))
        while x < size:
            word = str(rng.choice(WORDS))
            draw.text((x, y), word, font=font, fill=ink, stroke_width=bold, stroke_fill=ink)
            x += int(draw.textlength(word + " ", font=font))
        y += int(font_size * rng.uniform(1.2, 1.6))
    return image


def scanned_text(name: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A crop of one of scikit-image's scanned text images (grey), enlarged to ``size`` if smaller."""
    image = _rgb(getattr(skimage.data, name)())
    side = min(image.width, image.height, size)
    left = int(rng.integers(0, image.width - side + 1))
    top = int(rng.integers(0, image.height - side + 1))
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


def _bezier(points: np.ndarray, steps: int = 40) -> list[tuple[float, float]]:
    t = np.linspace(0, 1, steps)[:, None]
    p0, p1, p2, p3 = points
    curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    return [tuple(p) for p in curve]


def _screen_tone(size: int, rng: np.random.Generator) -> Image.Image:
    """A tile of dots (manga screen tone) or parallel hatching lines, black on transparent."""
    tone = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(tone)
    pitch = int(rng.integers(3, 7))
    if rng.random() < 0.5:
        radius = rng.uniform(0.6, pitch / 2.5)
        for y in range(0, size, pitch):
            for x in range((y // pitch % 2) * pitch // 2, size, pitch):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    else:
        for offset in range(-size, size, pitch):
            draw.line((offset, 0, offset + size, size), fill=255, width=1)
    return tone


def line_art(size: int, rng: np.random.Generator) -> Image.Image:
    """Strokes, ellipses and screen-toned polygons in black ink on paper."""
    image = paper(size, rng)
    ink = (int(rng.integers(0, 40)),) * 3
    for _ in range(int(rng.integers(1, 3))):  # toned regions under the strokes
        polygon = [tuple(p) for p in rng.uniform(-0.1, 1.1, (int(rng.integers(3, 6)), 2)) * size]
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).polygon(polygon, fill=255)
        tone = Image.fromarray(np.minimum(np.asarray(mask), np.asarray(_screen_tone(size, rng))))
        image.paste(Image.new("RGB", (size, size), ink), (0, 0), tone)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        curve = _bezier(rng.uniform(-0.1, 1.1, (4, 2)) * size)
        draw.line(curve, fill=ink, width=int(rng.choice([1, 1, 2, 3, 4])), joint="curve")
    for _ in range(int(rng.integers(1, 4))):
        x, y = rng.uniform(0, size, 2)
        rx, ry = rng.uniform(6, size / 4, 2)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), outline=ink, width=int(rng.choice([1, 2, 3])))
    return image


def horse_outline(size: int, rng: np.random.Generator) -> Image.Image:
    """The outline of scikit-image's horse silhouette, as an ink drawing on paper."""
    mask = Image.fromarray(~skimage.data.horse()).convert("L")
    scale = rng.uniform(0.5, 0.9) * size / max(mask.size)
    mask = mask.resize((round(mask.width * scale), round(mask.height * scale)), Image.LANCZOS)
    width = int(rng.choice([3, 5]))
    outline = np.asarray(mask.filter(ImageFilter.MaxFilter(width))).astype(int) - np.asarray(
        mask.filter(ImageFilter.MinFilter(width)))
    sheet = Image.new("L", (size, size), 0)
    sheet.paste(Image.fromarray(np.clip(outline, 0, 255).astype(np.uint8)),
                (int(rng.integers(0, size - mask.width + 1)), int(rng.integers(0, size - mask.height + 1))))
    image = paper(size, rng)
    image.paste(Image.new("RGB", (size, size), (15, 15, 15)), (0, 0), sheet)
    return image


def category_images(split: str, count: int, size: int, rng: np.random.Generator) -> dict[str, list[Image.Image]]:
    """The images of one split; the validation photos and scans come from other sources than the training ones."""
    train = split == "train"
    scan = "page" if train else "text"
    texts = [scanned_text(scan, size, rng) if i % 4 == 3 else text_page(size, rng) for i in range(count)]
    drawings = [horse_outline(size, rng) if train and i % 8 == 7 else line_art(size, rng) for i in range(count)]
    return {
        "photo": photo_crops(TRAIN_PHOTOS if train else VAL_PHOTOS, count, size, rng),
        "text": texts,
        "drawing": drawings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder to write train/ and val/ into")
    parser.add_argument("--size", type=int, default=192, help="side of the square HR images (default 192)")
    parser.add_argument("--train", type=int, default=16, help="training images per category (default 16)")
    parser.add_argument("--val", type=int, default=6, help="validation images per category (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for split, count, seed in (("train", args.train, args.seed), ("val", args.val, args.seed + 1)):
        rng = np.random.default_rng(seed)
        for category, images in category_images(split, count, args.size, rng).items():
            folder = args.out / split / category
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images):
                image.save(folder / f"{category}_{i:03d}.png")
    print(f"wrote {args.out}/train and {args.out}/val: photo, text, drawing "
          f"({args.train} + {args.val} images of {args.size}x{args.size} each)")


if __name__ == "__main__":
    main()
