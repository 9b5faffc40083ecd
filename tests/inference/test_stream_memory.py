"""Peak memory of ``srlab upscale`` and ``srlab eval`` in fresh processes (slow tests).

Peak resident set size is the child's own ``VmHWM`` (the high-water mark of its address space since
``exec``), read by the child as it exits. Not ``ru_maxrss``: Linux carries a forked child's maxrss over
from the parent's resident size at the fork, so a child of a pytest process grown to 12 GiB (the slow
export tests) reported 12 GiB whatever it did. bench/bench_large_image.py measures the same at larger sizes.
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


# ``python -m srlab ARGV`` that writes its peak RSS (kB) to the file named by the environment as it exits.
_RUN_AND_REPORT_PEAK = """
import os, runpy
try:
    runpy.run_module("srlab", run_name="__main__", alter_sys=True)
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["SRLAB_TEST_PEAK_FILE"], "w") as out:
        out.write(peak)
"""


def peak_rss_mib(*argv: str | Path) -> float:
    """Run ``python -m srlab argv`` in a fresh process (one torch thread); its peak RSS in MiB."""
    peak_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"srlab-peak-{os.getpid()}"
    env = dict(os.environ, OMP_NUM_THREADS="1", SRLAB_TEST_PEAK_FILE=str(peak_file),
               PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-c", _RUN_AND_REPORT_PEAK, *map(str, argv)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr
    peak_kib = int(peak_file.read_text())
    peak_file.unlink()
    return peak_kib / 1024


def synthetic_png(path: Path, width: int, height: int) -> Path:
    """A photo-like RGB PNG, written by libvips without holding it in memory."""
    bands = [pyvips.Image.perlin(width, height, cell_size=64, seed=seed) * 100 + 128 for seed in range(3)]
    bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb").pngsave(str(path), compression=1)
    return path


@pytest.mark.slow
def test_streamed_upscale_memory_does_not_grow_with_the_image(tmp_path):
    """x4 of 1024x512 (one strip) and of 1024x2048 (four strips): the same peak, well under the ~3 GiB
    the whole-image path needs for the larger one (96 bytes per output pixel). Measured 2026-12-06 (AMD
    EPYC): 497 / 523 MiB; 857 / 918 MiB before the samples were quantised in place, which the bound of
    1024 now catches, and the strips' difference of 60 MiB then was this test's flake under load."""
    peaks = {}
    for height in (512, 2048):
        source = synthetic_png(tmp_path / f"in{height}.png", 1024, height)
        peaks[height] = peak_rss_mib("upscale", source, "-o", tmp_path / "out", "--model", "bicubic", "--scale", "4",
                                     "--device", "cpu", "--stream", "always", "--png_compression", "1")
        with Image.open(tmp_path / "out" / f"in{height}_x4.png") as written:
            assert written.size == (4096, 4 * height)
    assert peaks[2048] < peaks[512] + 64 and peaks[2048] < 1024, peaks


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
