"""Speed of LUT super-resolution against srlab's bicubic and the fastest CNN of the zoo (ESPCN).

Usage: python bench/bench_lut_speed.py [--runs N] [--warmup N] [--threads T]

Upscales one 320x180 RGB photo x4 to 1280x720 on the CPU with torch limited to one thread:

* ``sr_lut`` S (the released ``Model_S_x4_4bit_int8.npy`` when ../shared holds it, else a random
  table of the same shape: the time does not depend on the table's values), F and V fields;
* ``mulut`` (2 stages x S/D/Y, random tables of the released shapes);
* ``bicubic`` (srlab's MATLAB-exact bicubic, 8-bit passes: what ``srlab upscale --model bicubic`` runs);
* ``espcn`` (Y-channel ESPCN with bicubic chroma; random weights: the time does not depend on them).

Runs are interleaved so that load from other jobs on a shared machine falls on all of them alike; read
the ratios rather than the absolute times. Memory: the peak resident-set growth of one forward pass,
measured in a fresh process per method (Linux ``VmHWM`` reset before the pass), beside the size of the tables.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model, median_ms  # noqa: E402

import srlab  # noqa: E402
from srlab.models.lut import MuLUT, SRLUT  # noqa: E402

SHARED_TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "official-weights" / "sr-lut" / "Model_S_x4_4bit_int8.npy"
METHODS = ("sr_lut_s", "sr_lut_f", "sr_lut_v", "mulut", "bicubic", "espcn")


def make_input() -> torch.Tensor:
    photo = Image.fromarray(data.astronaut()).resize((320, 180), Image.BICUBIC)
    return torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255


def build(method: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if method == "sr_lut_s" and SHARED_TABLE.is_file():
        return srlab.create_model(checkpoint=SHARED_TABLE)
    if method.startswith("sr_lut"):
        field = method[-1].upper()
        model = srlab.create_model("sr_lut", scale=4, args={"field": field, "levels": 257 if field == "V" else 17})
    elif method == "mulut":
        model = srlab.create_model("mulut", scale=4)
    else:
        return srlab.create_model(method, scale=4).eval()
    with torch.no_grad():
        for table in model.parameters():
            table.copy_(torch.randint(-127, 128, table.shape))
    return model.eval()


def table_mib(model: torch.nn.Module) -> tuple[float, float]:
    """(the tables as the released int8 files hold them, what inference keeps resident for them: the
    float32 parameters and their rotation-stacked copies); zeros for the other methods."""
    if not isinstance(model, (SRLUT, MuLUT)):
        return 0.0, 0.0
    entries = sum(p.numel() for p in model.parameters())
    return entries / 2**20, 4 * entries * (1 + 4) / 2**20


def _status_kib(field: str) -> int:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1])


def peak_growth_mib(method: str, queue) -> None:
    torch.set_num_threads(1)
    model, x = build(method), make_input()
    with torch.inference_mode():
        model(x[..., :16, :16])  # tables and caches built on a small input
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set (VmHWM) to now
        before = _status_kib("VmRSS")
        model(x)
        queue.put((_status_kib("VmHWM") - before) / 1024)


def measure_memory(method: str) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=peak_growth_mib, args=(method, queue))
    child.start()
    growth = queue.get()
    child.join()
    return growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per method (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = make_input()
    models = {m: build(m) for m in METHODS}

    def runner(model):
        def run():
            with torch.inference_mode():
                model(x)
        return run

    times = median_ms({m: runner(model) for m, model in models.items()}, args.runs, args.warmup)
    memory = {m: measure_memory(m) for m in METHODS}
    source = "released table" if SHARED_TABLE.is_file() else "random table"
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {args.threads} thread(s); 320x180 -> 1280x720 (x4)")
    print(f"median of {args.runs} interleaved runs; sr_lut_s: {source}")
    print("peak MiB: resident-set growth during one forward; tables: int8 file size / resident float32 + stacks")
    print(f"{'method':<10} {'ms':>8} {'vs bicubic':>11} {'vs espcn':>9} {'peak MiB':>9} {'tables MiB':>14}")
    for m in METHODS:
        stored, resident = table_mib(models[m])
        print(f"{m:<10} {times[m]:8.1f} {times[m] / times['bicubic']:10.2f}x {times[m] / times['espcn']:8.2f}x "
              f"{memory[m]:9.1f} {stored:6.2f} / {resident:5.1f}")


if __name__ == "__main__":
    main()
