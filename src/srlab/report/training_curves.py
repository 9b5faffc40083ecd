"""A training run's curves from its ``train.log`` (``srlab plot RUN_DIR``), without TensorBoard.

:func:`read_train_log` reads the validation lines that :mod:`srlab.train.trainer` writes::

    2026-12-05 21:06:20 epoch 1 iter 3 lr 2.525e-04 val_psnr_y 28.8519 val_ssim_y 0.8260 best_psnr_y
    28.8519 (epoch 1) time 0.1s loss_l1 0.04163 it/s 71.7 data_wait 6.8%

(one line in the file); every other line (the header, stage changes, resume notes) is passed over, and
fields it does not know are ignored, so logs of older and newer srlab versions read alike. A resumed
run appends to the same log: when the iteration goes back (a run resumed from a checkpoint older than
its last line), the later lines replace the earlier ones from that iteration on. A line cut short by a
kill can only be the last of a run's lines; it is skipped if it is the file's last line. A missing
file, one that is not text, holds no validation line, or holds a garbled one elsewhere is a one-line
:class:`~srlab.errors.SrlabError` naming the file.

:func:`plot_run` writes ``losses``, ``lr``, ``val_psnr_y`` and ``val_ssim_y`` against the iteration,
each as SVG and PNG. The SVG is drawn by :func:`srlab.report.plots.series_svg`, the hand-written SVG of
the benchmark and trade-off plots. The PNG is that same SVG rasterised by libvips (pyvips), which srlab
already depends on for images larger than memory: one drawing in two formats, and no plotting library
(matplotlib would be a new dependency and a second plotter with its own look; drawing the PNG with
Pillow would be a second hand-written plotter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from srlab.errors import SrlabError
from srlab.fileio import atomic_path, atomic_write_bytes
from srlab.report.plots import Series, series_svg

LOG_FILE = "train.log"
# PNG pixels per SVG unit: 1280x840 for the 640x420 plots, sharp on high-density screens.
PNG_SCALE = 2.0

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)"
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
_VALIDATION = re.compile(
    rf"^epoch (\d+) iter (\d+) lr {_NUMBER} val_psnr_y {_NUMBER} val_ssim_y {_NUMBER}(?:\s|$)"
)
_LOSS = re.compile(rf"(?:^|\s)loss_([A-Za-z0-9_]+) {_NUMBER}(?=\s|$)")
_SPEED = re.compile(rf"(?:^|\s)it/s {_NUMBER}(?=\s|$)")
_DATA_WAIT = re.compile(rf"(?:^|\s)data_wait {_NUMBER}%(?=\s|$)")
_ACCURACY = re.compile(rf"(?:^|\s)val_acc {_NUMBER}(?=\s|$)")


@dataclass
class LogRecord:
    """One validation line: the scores at ``iteration`` and the means since the previous line."""

    epoch: int
    iteration: int
    lr: float
    psnr_y: float
    ssim_y: float
    losses: dict[str, float] = field(default_factory=dict)
    iters_per_s: float | None = None
    data_wait: float | None = None  # fraction of the training loop's time spent waiting for batches
    accuracy: float | None = None  # val_acc: the category accuracy of step multitask


def parse_line(text: str) -> LogRecord | None:
    """The record of a validation line (time stamp optional), None for any other line; raises
    ValueError for a validation line whose fields do not read."""
    text = _STAMP.sub("", text.strip(), count=1)
    if not text.startswith("epoch ") or " val_psnr_y " not in text:
        return None
    match = _VALIDATION.match(text)
    if match is None:
        raise ValueError("a validation line without its epoch, iter, lr, val_psnr_y and val_ssim_y fields")
    epoch, iteration, lr, psnr, ssim = match.groups()
    speed, wait, accuracy = _SPEED.search(text), _DATA_WAIT.search(text), _ACCURACY.search(text)
    return LogRecord(
        int(epoch), int(iteration), float(lr), float(psnr), float(ssim),
        {name: float(value) for name, value in _LOSS.findall(text)},
        float(speed.group(1)) if speed else None,
        float(wait.group(1)) / 100 if wait else None,
        float(accuracy.group(1)) if accuracy else None,
    )


def read_train_log(path: str | Path) -> list[LogRecord]:
    """The validation records of a ``train.log``, one per iteration (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"no training log '{path}': give the run directory of an `srlab train` run (--out)")
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise SrlabError(f"training log '{path}' is not text: restore it, or retrain (srlab writes it as UTF-8)") from None
    records: list[LogRecord] = []
    for number, line in enumerate(lines, start=1):
        try:
            record = parse_line(line)
        except ValueError as e:
            if number == len(lines):  # the last line, cut short by a kill
                continue
            raise SrlabError(f"training log '{path}' line {number} is garbled ({e}): fix or delete that line") from None
        if record is None:
            continue
        # A resumed run repeats the iterations after its checkpoint: its lines replace the earlier ones.
        while records and records[-1].iteration >= record.iteration:
            records.pop()
        records.append(record)
    if not records:
        raise SrlabError(
            f"training log '{path}' has no validation line yet: plot after the run's first validation"
        )
    return records


def training_series(records: list[LogRecord]) -> dict[str, tuple[str, list[Series]]]:
    """{file stem: (y label, lines)} of the curves to draw; ``losses`` only when the log has loss terms."""
    iterations = tuple(float(r.iteration) for r in records)
    names = list(dict.fromkeys(name for r in records for name in r.losses))
    losses = [
        Series(f"loss_{name}", *zip(*[(float(r.iteration), r.losses[name]) for r in records if name in r.losses]))
        for name in names
    ]
    curves = {
        "lr": ("learning rate", [Series("lr", iterations, tuple(r.lr for r in records))]),
        "val_psnr_y": ("validation PSNR (Y, dB)", [Series("val_psnr_y", iterations, tuple(r.psnr_y for r in records))]),
        "val_ssim_y": ("validation SSIM (Y)", [Series("val_ssim_y", iterations, tuple(r.ssim_y for r in records))]),
    }
    if losses:
        curves = {"losses": ("training loss (mean since the previous validation)", losses), **curves}
    return curves


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None, *, png: bool = True) -> list[Path]:
    """Write the curves of ``run_dir``'s ``train.log`` to ``out_dir`` (default ``run_dir/plots``):
    ``<curve>.svg`` and, with ``png``, ``<curve>.png``; returns the files written."""
    run_dir = Path(run_dir)
    records = read_train_log(run_dir / LOG_FILE)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    note = f"{run_dir.name}: {len(records)} validations, iteration {records[-1].iteration}"
    written = []
    for stem, (y_label, lines) in training_series(records).items():
        svg = series_svg(lines, title=f"{run_dir.name}: {stem}", x_label="iteration", y_label=y_label, note=note)
        svg_path = out_dir / f"{stem}.svg"
        with atomic_path(svg_path) as tmp:
            tmp.write_text(svg)
        written.append(svg_path)
        if png:
            written.append(_write_png(svg, out_dir / f"{stem}.png"))
    return written


def _write_png(svg: str, path: Path) -> Path:
    try:
        import pyvips
    except (ImportError, OSError) as e:  # OSError: the Python package is there but libvips is not
        raise SrlabError(
            f"writing '{path}' needs libvips: pip install pyvips pyvips-binary ({' '.join(str(e).split())}), "
            "or pass --no_png for the SVGs alone"
        ) from None
    try:
        data = pyvips.Image.svgload_buffer(svg.encode(), scale=PNG_SCALE).write_to_buffer(".png")
    except pyvips.Error as e:  # a libvips built without SVG support (librsvg)
        raise SrlabError(
            f"writing '{path}': this libvips cannot read SVG ({str(e).splitlines()[0]}): install pyvips-binary "
            "(it bundles librsvg), or pass --no_png for the SVGs alone"
        ) from None
    atomic_write_bytes(path, data)
    return path
