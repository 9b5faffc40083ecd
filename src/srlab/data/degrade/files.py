"""LR test sets from HR images (``srlab degrade``): ``OUT/<name>.png`` and ``OUT/<name>.json`` (its δ).

The HR image is mod-cropped to the scale first (as the evaluation protocol crops it), so the LR image
pairs with it pixel for pixel. Each image's δ is drawn from ``(seed, its name)`` alone: the same
files for the same seed, whatever else is in the folder and in whichever order, byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from srlab.data.datasets import modcrop
from srlab.data.degrade import Degradation, name_seed, sample_rng
from srlab.data.io import read_rgb, write_image
from srlab.errors import SrlabError
from srlab.fileio import atomic_write_bytes


def delta_record(image: Path, degradation: Degradation, seed: int, hr_size: tuple[int, int],
                 ops: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """What the ``.json`` beside an LR image holds: enough to make it again (``apply_ops(hr, ops)``);
    ``version``: srlab's, that made it."""
    return {
        "srlab": version, "image": image.name, "hr_size": list(hr_size), "scale": degradation.scale,
        "seed": seed, "degradation": degradation.describe(), "ops": ops,
    }


def degrade_file(image: Path, out_dir: Path, degradation: Degradation, *, seed: int,
                 version: str) -> tuple[Path, Path]:
    """Write ``out_dir/<stem>.png`` (the LR image) and ``out_dir/<stem>.json`` (its δ); returns both paths."""
    hr = modcrop(read_rgb(image), degradation.scale)
    lr, ops = degradation(hr, sample_rng(seed, name_seed(image.stem)))
    png, record = out_dir / f"{image.stem}.png", out_dir / f"{image.stem}.json"
    write_image(png, lr)
    text = json.dumps(delta_record(image, degradation, seed, tuple(hr.shape[-2:]), ops, version), indent=1)
    atomic_write_bytes(record, (text + "\n").encode())
    return png, record


def read_steps_file(path: str | Path) -> list[dict[str, Any]]:
    """A YAML file of steps: a list, or a mapping ``{steps: [...]}``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SrlabError(f"steps file '{path}' does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SrlabError(f"steps file '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None
    if isinstance(data, dict) and set(data) == {"steps"}:
        data = data["steps"]
    if not isinstance(data, list):
        raise SrlabError(f"steps file '{path}' must hold a list of steps, e.g. - {{step: downscale}}")
    return data
