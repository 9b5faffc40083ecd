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


def synthetic_png(path: Path, width: int, height: int) -> Path:
    """A photo-like RGB PNG, written by libvips without holding it in memory."""
    bands = [pyvips.Image.perlin(width, height, cell_size=64, seed=seed) * 100 + 128 for seed in range(3)]
    bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb").pngsave(str(path), compression=1)
    return path


@pytest.mark.slow
def test_streamed_upscale_memory_does_not_grow_with_the_image(tmp_path):
    """x4 of 1024x512 (one strip) and of 1024x2048 (four strips): the same peak, well under the ~3 GiB
    the whole-image path needs for the larger one (96 bytes per output pixel)."""
    peaks = {}
    for height in (512, 2048):
        source = synthetic_png(tmp_path / f"in{height}.png", 1024, height)
        peaks[height] = peak_rss_mib("upscale", source, "-o", tmp_path / "out", "--model", "bicubic", "--scale", "4",
                                     "--device", "cpu", "--stream", "always", "--png_compression", "1")
        with Image.open(tmp_path / "out" / f"in{height}_x4.png") as written:
            assert written.size == (4096, 4 * height)
    assert peaks[2048] < peaks[512] + 64 and peaks[2048] < 1536, peaks


@pytest.mark.slow
def test_batches_do_not_grow_memory(tmp_path):
    """Peak RSS over 240 images is within a few MiB of that over 40 (upscale; eval: 160 vs 40).

    A leak of 64 KiB per image (e.g. one kept output) would add 12 MiB or more.
    """
    rng = np.random.default_rng(0)
    folders = {}
    for count in (40, 160, 240):
        folders[count] = tmp_path / f"in{count}"
        folders[count].mkdir()
    for i in range(240):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folders[240] / f"img{i:03d}.png")
    for count in (40, 160):
        for p in sorted(folders[240].iterdir())[:count]:
            (folders[count] / p.name).symlink_to(p)
    bicubic = ["--model", "bicubic", "--scale", "2", "--device", "cpu"]
    upscale = {n: peak_rss_mib("upscale", folders[n], "-o", tmp_path / f"out{n}", *bicubic) for n in (40, 240)}
    assert upscale[240] - upscale[40] < 12, upscale
    evaluate = {n: peak_rss_mib("eval", *bicubic, "--data", folders[n], "--quiet") for n in (40, 160)}
    assert evaluate[160] - evaluate[40] < 12, evaluate
