"""Peak memory of ``srlab upscale`` and ``srlab eval`` in fresh processes (slow tests).

Peak resident set size comes from the kernel (``ru_maxrss`` of ``os.wait4`` on the child), so it is
the child's own peak whatever else runs. bench/bench_large_image.py measures the same at larger sizes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pyvips = pytest.importorskip("pyvips")

SRC = Path(__file__).resolve().parents[2] / "src"


def peak_rss_mib(*argv: str | Path) -> float:
    """Run ``python -m srlab argv`` in a fresh process (one torch thread); its peak RSS in MiB."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    process = subprocess.Popen([sys.executable, "-m", "srlab", *map(str, argv)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    error = process.stderr.read().decode()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, error
    return usage.ru_maxrss / 1024


def synthetic_png(path: Path, size: int) -> Path:
    """A size x size photo-like RGB PNG, written by libvips without holding it in memory."""
    bands = [pyvips.Image.perlin(size, size, cell_size=64, seed=seed) * 100 + 128 for seed in range(3)]
    bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb").pngsave(str(path), compression=1)
    return path


@pytest.mark.slow
def test_streamed_upscale_memory_is_bounded_by_the_strip(tmp_path):
    """2048 x 2048 x4: the whole-image path needs about 6 GiB (96 bytes per output pixel); strips ~1 GiB."""
    source = synthetic_png(tmp_path / "big.png", 2048)
    peak = peak_rss_mib("upscale", source, "-o", tmp_path / "out", "--model", "bicubic", "--scale", "4",
                        "--device", "cpu", "--stream", "always")
    with Image.open(tmp_path / "out" / "big_x4.png") as written:
        assert written.size == (8192, 8192)
    assert peak < 1600, f"peak RSS {peak:.0f} MiB"


@pytest.mark.slow
def test_batches_do_not_grow_memory(tmp_path):
    """Peak RSS after 400 images is within a few MiB of that after 50 (upscale) and 50 vs 200 (eval)."""
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(400):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"img{i:03d}.png")
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(folder.iterdir())[:50]:
        (few / p.name).symlink_to(p)
    bicubic = ["--model", "bicubic", "--scale", "2", "--device", "cpu"]
    upscale_few = peak_rss_mib("upscale", few, "-o", tmp_path / "o1", *bicubic)
    upscale_many = peak_rss_mib("upscale", folder, "-o", tmp_path / "o2", *bicubic)
    assert upscale_many - upscale_few < 16, (upscale_few, upscale_many)
    eval_few = peak_rss_mib("eval", *bicubic, "--data", few, "--quiet")
    eval_many = peak_rss_mib("eval", *bicubic, "--data", folder, "--quiet")
    assert eval_many - eval_few < 16, (eval_few, eval_many)
