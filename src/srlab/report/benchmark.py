"""``srlab benchmark``: evaluate and profile several models at several scales, and write a report folder.

For every model and scale the model is built with its weights: the weights bundled with srlab, a
``--checkpoint NAME=FILE`` given for it, or none for bicubic (a network without weights is an error that
names the fix). It is scored on every data set with the evaluation protocol
(:func:`srlab.inference.evaluate.evaluate_folder`) and profiled (:func:`srlab.profile.profile_model`:
parameters as the papers count them, MACs for a 1280x720 output, median CPU latency with the number
of threads stated). The report folder then holds:

- ``results.json``, ``results.csv``, ``results.md`` (:mod:`srlab.report.tables`);
- ``plots/*.svg``: PSNR against MACs and against parameters, per scale and data set, and the
  per-image PSNR of each model (:mod:`srlab.report.plots`);
- ``crops/*.png``: zoomed crops of HR, bicubic and each model for the chosen images, plus each image's
  overview (the crop outlined) and a comparison strip (:mod:`srlab.inference.compare`);
- ``index.html``: all of it on one page that opens offline (:mod:`srlab.report.html`).

Every file is written atomically.
"""

from __future__ import annotations

import datetime
import math
import platform
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn
from tqdm import tqdm

from srlab.adaptive.method import adaptive_for
from srlab.data.datasets import PairedFolder, discover_pairs, load_pair
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.compare import save_comparison
from srlab.inference.evaluate import evaluate_folder
from srlab.inference.upscale import resolve_device, upscale_tensor
from srlab.metrics.protocol import PAPER_PROTOCOL
from srlab.metrics.registry import PROTOCOL_METRICS, MetricSet, parse_metrics
from srlab.models.complexity import lr_size_for_720p
from srlab.models.create import create_model, model_with_weights
from srlab.models.registry import spec_of
from srlab.models.reparam import deploy
from srlab.models.weights import read_checkpoint
from srlab.profile.report import profile_model
from srlab.report.html import write_html
from srlab.report.plots import Point, box_svg, scatter_svg
from srlab.report.result import BenchmarkResult, Comparison, ModelEntry, Panel, Plot
from srlab.report.tables import write_tables

BASELINE = "bicubic"
CROP_DISPLAY = 192  # crops are zoomed (nearest neighbour) to about this many pixels


@dataclass(frozen=True)
class CropSpec:
    """``--crop NAME:X,Y,SIZE``: the square of side SIZE at column X, row Y (HR pixels) of image NAME."""

    image: str
    x: int
    y: int
    size: int


def parse_crop(text: str) -> CropSpec:
    match = re.fullmatch(r"\s*(.+?)\s*:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", text)
    if not match or int(match.group(4)) < 1:
        raise SrlabError(f"--crop expects NAME:X,Y,SIZE (e.g. --crop baby:100,120,64), got {text!r}")
    return CropSpec(match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4)))


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "x"


# ---------------------------------------------------------------------------------------------- models


def _checkpoint_for_scale(
    name: str, scale: int, files: Sequence[Path], args: Mapping[str, Any],
) -> tuple[nn.Module, Path]:
    """(model, file): the model built from the one of ``files`` that holds ``name`` at ``scale``.

    A checkpoint that records its scale (srlab's) serves that scale only; one that records none (an
    official release; a multi-scale network such as CARN's) serves every scale it loads into strictly.
    """
    unrecorded, other_scale = [], []
    for path in files:
        ckpt = read_checkpoint(path)
        if ckpt.model is not None and ckpt.model != name:
            raise SrlabError(
                f"--checkpoint {name}={path}: the file holds model {ckpt.model!r}, not {name!r}: "
                f"pass it as --checkpoint {ckpt.model}={path} (and add {ckpt.model} to --models)"
            )
        if ckpt.model is not None and ckpt.scale == scale:
            return model_with_weights(name, scale=scale, checkpoint=path, args=args)[0], path
        if ckpt.scale is None:
            unrecorded.append(path)
        else:
            other_scale.append((path, ckpt.scale))
    errors = []
    for path in unrecorded:
        try:
            return model_with_weights(name, scale=scale, checkpoint=path, args=args)[0], path
        except SrlabError as e:
            errors.append(str(e))
    if errors:
        raise SrlabError(
            f"no --checkpoint given for {name} loads at x{scale} ({errors[0]}): add --checkpoint {name}=FILE "
            f"with x{scale} weights, or drop {scale} from --scales"
        )
    path, recorded = other_scale[0]
    raise SrlabError(
        f"--checkpoint {name}={path} holds {name} x{recorded}, not x{scale}: add --checkpoint {name}=FILE "
        f"with x{scale} weights, or drop {scale} from --scales"
    )


def load_benchmark_model(
    name: str, scale: int, *, checkpoints: Sequence[str | Path] = (), args: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, str]:
    """(model in eval mode, where its weights come from) for one model and scale."""
    args = dict(args or {})
    if checkpoints:
        files = [Path(p) for p in checkpoints]
        model, path = _checkpoint_for_scale(name, scale, files, args)
        return model.eval(), str(path)
    return model_with_weights(
        name, scale=scale, args=args, checkpoint_flag=f"--checkpoint {name}=FILE", args_flag=f"--model_arg {name}:...",
    )


# ---------------------------------------------------------------------------------------------- crops


def _to_pil(image: torch.Tensor) -> Image.Image:
    array = image.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def auto_crop(hr: torch.Tensor, scale: int) -> tuple[int, int, int]:
    """(top, left, side): the most textured square (largest mean gradient magnitude of the luma), the
    kind of region papers zoom into; side is a fifth of the shorter image side (at least 16 pixels)."""
    height, width = hr.shape[-2:]
    side = min(max(16, min(height, width) // 5), height - 2 * scale, width - 2 * scale)
    if side < 4:
        return 0, 0, max(1, min(height, width))
    grey = hr.float().mean(0, keepdim=True)[None]
    gx = (grey[..., :, 1:] - grey[..., :, :-1]).abs()[..., :-1, :]
    gy = (grey[..., 1:, :] - grey[..., :-1, :]).abs()[..., :, :-1]
    energy = gx + gy
    inner = energy[..., scale: height - scale - 1, scale: width - scale - 1]
    stride = max(1, side // 4)
    pooled = F.avg_pool2d(inner, side, stride=stride)
    if pooled.numel() == 0:
        return scale, scale, side
    index = int(pooled.flatten().argmax())
    row, col = divmod(index, pooled.shape[-1])
    return scale + row * stride, scale + col * stride, side


def _save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _comparisons_for(
    out: Path, folder: PairedFolder, names: Sequence[tuple[str, CropSpec | None]], scale: int,
    models: Sequence[tuple[str, nn.Module]], device: torch.device,
    known: Mapping[tuple[str, str], Mapping[str, float]],
) -> list[Comparison]:
    crops_dir = out / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    pairs = {pair.name: pair for pair in folder.pairs}
    made = []
    for image_name, spec in names:
        lr, hr = load_pair(pairs[image_name], scale)
        outputs = []
        with torch.inference_mode():
            for label, model in models:
                sr = upscale_tensor(model, lr.to(device)).float().cpu()
                # The evaluation's per-image scores where it has them (the same numbers as the tables);
                # bicubic, when it is not one of the benchmarked models, is scored here the same way.
                scores = known.get((label, image_name)) or PAPER_PROTOCOL.score(sr, hr, scale)
                outputs.append((label, sr.clamp(0, 1), scores))
        height, width = hr.shape[-2:]
        if spec is None:
            top, left, side = auto_crop(hr, scale)
        else:
            top, left, side = spec.y, spec.x, spec.size
            if top + side > height or left + side > width:
                raise SrlabError(
                    f"--crop {spec.image}:{spec.x},{spec.y},{spec.size} leaves the image ({width}x{height} at x{scale} "
                    f"after cropping to a multiple of the scale): choose X + SIZE <= {width} and Y + SIZE <= {height}"
                )
        zoom = max(1, math.ceil(CROP_DISPLAY / side))
        stem = f"{safe_name(folder.name)}_{safe_name(image_name)}_x{scale}"
        panels = []
        for label, image, scores in [("HR", hr, None), *outputs]:
            crop = _to_pil(image).crop((left, top, left + side, top + side))
            crop = crop.resize((side * zoom, side * zoom), Image.NEAREST)
            path = crops_dir / f"{stem}_{safe_name(label)}.png"
            _save_png(crop, path)
            panels.append(Panel(
                label, path.relative_to(out).as_posix(),
                None if scores is None else scores["psnr_y"], None if scores is None else scores["ssim_y"],
            ))
        overview = _to_pil(hr)
        draw = ImageDraw.Draw(overview)
        line = max(1, round(max(height, width) / 300))
        box = (left - line, top - line, left + side + line - 1, top + side + line - 1)
        draw.rectangle(box, outline=(255, 0, 0), width=line)
        overview_path = crops_dir / f"{stem}_overview.png"
        _save_png(overview, overview_path)
        strip_path = crops_dir / f"{stem}_comparison.png"
        strip_panels = [(f"{label} {scores['psnr_y']:.2f} dB", sr) for label, sr, scores in outputs] + [("HR", hr)]
        save_comparison(strip_path, strip_panels, crop=(top, left, side))
        made.append(Comparison(
            folder.name, image_name, scale, (top, left, side), overview_path.relative_to(out).as_posix(),
            strip_path.relative_to(out).as_posix(), tuple(panels),
        ))
    return made


def choose_images(
    folders: Sequence[PairedFolder], images: int, crops: Sequence[CropSpec],
) -> list[tuple[int, list[tuple[str, CropSpec | None]]]]:
    """[(index of the data set, [(image name, crop or None for automatic)])]: the images to compare."""
    if not crops:
        first = folders[0]
        return [(0, [(pair.name, None) for pair in first.pairs[:images]])] if images > 0 else []
    chosen: dict[int, list[tuple[str, CropSpec | None]]] = {}
    for spec in crops:
        index = next((i for i, f in enumerate(folders) if any(p.name == spec.image for p in f.pairs)), None)
        if index is None:
            raise SrlabError(
                f"--crop {spec.image}:...: no image named {spec.image!r} in the data sets "
                f"(names are file stems, e.g. {folders[0].pairs[0].name if folders[0].pairs else 'baby'})"
            )
        chosen.setdefault(index, []).append((spec.image, spec))
    return sorted(chosen.items())


# ---------------------------------------------------------------------------------------------- plots


def _write_plots(result: BenchmarkResult, out: Path) -> list[Plot]:
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    psnr_key = result.score_keys[0]
    threads = result.meta["latency_threads"]
    made = []
    for scale in result.scales:
        entries = result.entries_at(scale)
        for dataset in result.datasets:
            stem = f"x{scale}_{safe_name(dataset)}"
            note = f"bubble area ~ CPU latency ({threads} thread(s))"
            for kind, x_label, value in (
                ("macs", "MACs (G, 1280x720 output, log scale)", lambda e: e.profile.macs_720p / 1e9),
                ("params", "parameters (K, log scale)", lambda e: e.profile.params / 1e3),
            ):
                points = [
                    Point(e.model, value(e), e.results[dataset].scores[psnr_key], e.profile.latency_ms) for e in entries
                ]
                title = f"{dataset} x{scale}: PSNR vs {'MACs' if kind == 'macs' else 'parameters'}"
                svg = scatter_svg(points, title=title, x_label=x_label, y_label="PSNR (dB, Y)", note=note)
                made.append(_write_plot(out, plots_dir / f"psnr_vs_{kind}_{stem}.svg", svg, title, kind, scale, dataset))
            groups = [(e.model, [image.scores[psnr_key] for image in e.results[dataset].images]) for e in entries]
            title = f"{dataset} x{scale}: PSNR per image"
            svg = box_svg(groups, title=title, y_label="PSNR (dB, Y)")
            made.append(_write_plot(out, plots_dir / f"psnr_per_image_{stem}.svg", svg, title, "per_image", scale, dataset))
    return made


def _write_plot(out: Path, path: Path, svg: str, title: str, kind: str, scale: int, dataset: str) -> Plot:
    with atomic_path(path) as tmp:
        tmp.write_text(svg, encoding="utf-8")
    return Plot(title, path.relative_to(out).as_posix(), kind, scale, dataset)


# ---------------------------------------------------------------------------------------------- run


def run_benchmark(
    models: Sequence[str],
    data: Sequence[str | Path],
    scales: Sequence[int],
    out: str | Path,
    *,
    checkpoints: Mapping[str, Sequence[str | Path]] | None = None,
    model_args: Mapping[str, Mapping[str, Any]] | None = None,
    metrics: Sequence[str] = PROTOCOL_METRICS,
    metric_weights: Mapping[str, str] | None = None,
    images: int = 2,
    crops: Sequence[CropSpec] = (),
    threads: int | None = None,
    repeats: int = 10,
    warmup: int = 2,
    latency_lr_size: tuple[int, int] | None = None,
    device: str = "cpu",
    tile: int | None = None,
    knobs: Mapping[str, float] | None = None,
    adaptive_methods: Mapping[str, str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    path: str = "eager",
    precision: str = "auto",
    compile_from: float | None = None,
) -> BenchmarkResult:
    """Evaluate and profile every model at every scale and write the report folder ``out``.

    Content-adaptive models (``ModelInfo.adaptive``) are scored through their adaptive method, or the one
    ``adaptive_methods[name]`` names (``"off"``: the plain forward), at the knob ``knobs[name]`` (default:
    the method's), and their results carry the MACs actually spent; the
    profile (MACs, latency) is the full path's. Latency is measured on the inference path ``path``
    (``auto``: :mod:`srlab.inference.paths`' choice, ``precision`` allowing, compiling from ``compile_from``
    seconds of eager, None for the default); scores are always fp32 eager's.

    ``metrics``: registered metric names (PSNR and SSIM are always scored, first); ``metric_weights``: the
    weight files of those that need them (``--metric_weights`` keys), loaded once before the long part."""
    started = time.perf_counter()
    log = log or (lambda _: None)
    models = list(dict.fromkeys(models))
    scales = list(dict.fromkeys(int(s) for s in scales))
    checkpoints = {k: list(v) for k, v in (checkpoints or {}).items()}
    model_args = {k: dict(v) for k, v in (model_args or {}).items()}
    if not models or not scales or not data:
        raise SrlabError("benchmark needs at least one model (--models), scale (--scales) and data set (--data)")
    knobs = dict(knobs or {})
    adaptive_methods = dict(adaptive_methods or {})
    for flag_name, given in (("--checkpoint", checkpoints), ("--model_arg", model_args), ("--knob", knobs),
                             ("--adaptive", adaptive_methods)):
        for name in given:
            if name not in models:
                raise SrlabError(f"{flag_name} names model {name!r}, which is not in --models: add it to --models")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SrlabError(f"--out '{out}' is a file: give a folder for the report")
    eval_device = resolve_device(device)
    used_threads = torch.get_num_threads() if threads is None else threads

    # Everything that can be wrong is checked before the long part: folders, names, weights.
    folders = {scale: [discover_pairs(d, scale) for d in data] for scale in scales}
    datasets = [f.name for f in folders[scales[0]]]
    for scale in scales:
        for folder in folders[scale]:
            if not folder.pairs:
                raise SrlabError(f"data set '{folder.name}' holds no images at x{scale}: check the folder")
    if len(set(datasets)) != len(datasets):
        raise SrlabError(f"two data sets share a name ({', '.join(datasets)}): give folders with distinct names")
    chosen = choose_images(folders[scales[0]], images, crops)
    metric_set = MetricSet(parse_metrics(metrics), metric_weights)
    loaded: dict[tuple[str, int], tuple[nn.Module, str]] = {}
    adaptive = {}
    for scale in scales:
        for name in models:
            loaded[name, scale] = model, weights = load_benchmark_model(
                name, scale, checkpoints=checkpoints.get(name, ()), args=model_args.get(name)
            )
            method = adaptive_methods.get(name)
            if method == "off":
                if name in knobs:
                    raise SrlabError(f"--knob {name}= needs adaptive inference: drop --adaptive {name}=off")
            elif spec_of(model).info.adaptive or name in knobs or method:
                runner = deploy(model).to(eval_device).eval()
                checkpoint = Path(weights) if Path(weights).is_file() else None
                adaptive[name, scale] = (runner, adaptive_for(runner, method=method, checkpoint=checkpoint,
                                                              knob=knobs.get(name)))

    out.mkdir(parents=True, exist_ok=True)
    score_keys = metric_set.keys(PAPER_PROTOCOL)
    entries = []
    jobs = [(scale, name) for scale in scales for name in models]
    bar = tqdm(jobs, disable=not progress, desc="benchmark", unit="model")
    for scale, name in bar:
        bar.set_postfix_str(f"{name} x{scale}")
        model, weights = loaded[name, scale]
        profile = profile_model(
            model, device="cpu", threads=used_threads, repeats=repeats, warmup=warmup, lr_size=latency_lr_size,
            memory=False, path=path, precision=precision, compile_from=compile_from,
        )
        runner, method = adaptive.get((name, scale), (deploy(model).to(eval_device).eval(), None))
        entry = ModelEntry(name, scale, weights, profile)
        with torch.inference_mode():
            for folder in folders[scale]:
                result = evaluate_folder(runner, folder, tile=None if method else tile, progress=progress,
                                         metrics=metric_set, adaptive=method)
                entry.results[folder.name] = result
                spent = "" if result.compute is None else (
                    f" (adaptive {result.compute.method}: {result.compute.macs_fraction:.1%} of its full-path MACs spent)"
                )
                log(
                    f"{name:<14} x{scale} {folder.name:<12} {result.psnr_y:8.4f} {result.ssim_y:.4f}  "
                    f"params {profile.params:,}  MACs {profile.macs_720p / 1e9:.2f} G  "
                    f"latency {profile.latency_ms:.1f} ms ({used_threads} thread(s), {profile.path} path){spent}"
                )
        entries.append(entry)

    lr_sizes = {scale: latency_lr_size or lr_size_for_720p(scale) for scale in scales}
    meta = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "protocol": "Y of BT.601 YCbCr, SR rounded to 8 bits, scale pixels shaved (srlab.metrics.protocol)",
        "eval_device": str(eval_device),
        "latency_device": "cpu",
        "latency_threads": used_threads,
        "latency_repeats": repeats,
        "latency_warmup": warmup,
        "latency_paths": {f"{e.model}_x{e.scale}": e.profile.path for e in entries},
        "latency_lr_size": (
            "x".join(map(str, latency_lr_size)) if latency_lr_size
            else "for a 1280x720 output (" + ", ".join(f"x{s}: {h}x{w}" for s, (h, w) in lr_sizes.items()) + ")"
        ),
        "data": {folder.name: str(Path(d)) for folder, d in zip(folders[scales[0]], data)},
        "weights": {f"{e.model}_x{e.scale}": e.weights for e in entries},
    }
    result = BenchmarkResult(models, scales, datasets, entries, score_keys, meta)

    if chosen:
        bicubic_models = {
            scale: (loaded[BASELINE, scale][0] if BASELINE in models else create_model(BASELINE, scale=scale))
            for scale in scales
        }
        for scale in scales:
            panel_models = [(BASELINE, deploy(bicubic_models[scale]).to(eval_device).eval())]
            panel_models += [
                (name, deploy(loaded[name, scale][0]).to(eval_device).eval()) for name in models if name != BASELINE
            ]
            for index, names in chosen:
                folder = folders[scale][index]
                known = {
                    (entry.model, image.name): image.scores
                    for entry in result.entries_at(scale) for image in entry.results[folder.name].images
                }
                result.comparisons += _comparisons_for(
                    out, folder, names, scale, panel_models, eval_device, known
                )

    result.plots = _write_plots(result, out)
    result.meta["elapsed_s"] = round(time.perf_counter() - started, 1)

    write_tables(result, out)
    write_html(result, out)
    return result
