"""Trade-off curves of content-adaptive models (``srlab tradeoff``): quality against compute as the knob moves.

For an adaptive model and its method (:mod:`srlab.adaptive`), every knob value of the sweep (the method's
``knob_sweep``, cheap to expensive, or the values asked for) gives one point per data set:

- ``psnr_y``, ``ssim_y``, ``macs_spent``, ``macs_full`` (means per image) from
  :func:`srlab.inference.evaluate.evaluate_folder` through the method, under its evaluation protocol
  (ClassSR/ARM: the region their patch grid covers);
- ``latency_ms``: the method's ``upscale`` on whole LR images, and ``latency_full_ms``: the same weights'
  full path (:meth:`AdaptiveMethod.full_path`, a plain network on whole images), timed side by side.

One more point, ``"full_path": true`` (knob null), is the full path itself: its scores and MACs under the
same protocol (a patch-routed method with every patch on its heaviest route), so the loss in dB of each
knob value is explicit. Static zoo networks (``--static``) are reference points: scores and MACs under the
same protocol, latency on whole images. For those two kinds ``macs_full`` and ``latency_full_ms`` are
their own (they compute everything).

Latency: for each image (the first ``latency_images`` of each data set), every configuration (each knob
value, the full path, each static network) runs once per round, in turn, for ``repeats`` rounds after
``warmup`` untimed ones (:func:`srlab.profile.latency.measure_interleaved`), so that the load of a shared
machine falls on all of them alike; a point's latency is the mean over the images of its medians.

The output folder holds ``tradeoff.json`` (the list of points), ``tradeoff_meta.json`` (machine, threads,
torch, protocol), ``tradeoff.csv``, ``psnr_vs_macs.svg``, ``psnr_vs_latency.svg`` (one pair per data set,
suffixed with its name, when there are several) and ``index.html``; every file is written atomically.
"""

from __future__ import annotations

import csv
import datetime
import html
import io
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from srlab.adaptive.engine import PatchRoutedMethod
from srlab.adaptive.method import AdaptiveMethod, AdaptiveStats
from srlab.adaptive.reference import StaticRoutes
from srlab.data.datasets import PairedFolder, discover_pairs
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.inference.evaluate import DatasetResult, evaluate_folder, iter_folder
from srlab.inference.upscale import upscale_tensor
from srlab.models.complexity import count_macs
from srlab.models.create import model_with_weights
from srlab.models.registry import ModelSpec, spec_of
from srlab.models.reparam import deploy
from srlab.profile.latency import measure_interleaved, torch_threads
from srlab.machine import cpu_model
from srlab.report.benchmark import safe_name
from srlab.report.html import render_page
from srlab.report.plots import Curve, Point, curves_svg

TITLE = "srlab trade-off report"
# The keys the issue names first, then what identifies the point.
CSV_FIELDS = (
    "dataset", "model", "method", "knob_name", "knob", "full_path", "static",
    "psnr_y", "ssim_y", "macs_spent", "macs_full", "latency_ms", "latency_full_ms",
)


@dataclass
class TradeoffPoint:
    dataset: str
    model: str  # the adaptive model's registered name, or the static network's
    method: str | None  # the adaptive method; None for a static network
    knob_name: str | None
    knob: float | None  # None: the full path, a static network, or a method without a knob
    psnr_y: float
    ssim_y: float
    macs_spent: float  # means per image
    macs_full: float
    latency_ms: float = 0.0  # means over the timed images of each image's median
    latency_full_ms: float = 0.0
    full_path: bool = False
    static: bool = False
    routes: dict[str, int] = field(default_factory=dict)  # the routing histogram summed over the set

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        if self.static:
            return self.model
        return f"{self.model} full path" if self.full_path else f"{self.model} ({self.method})"

    @property
    def tag(self) -> str:
        return "" if self.knob is None else f"{self.knob_name}={self.knob:g}"


@dataclass
class TradeoffResult:
    points: list[TradeoffPoint]
    meta: dict


# ---------------------------------------------------------------------------------------------- inputs


def knob_sweep(method: AdaptiveMethod, knobs: Sequence[float] | None = None) -> list[float | None]:
    """The knob values to visit, each checked by the method (its one-line error) before any work; a
    method without a knob has the one point ``[None]``."""
    if method.knob_name is None:
        if knobs:
            raise SrlabError(f"adaptive method {method.method_name} has no knob: drop --knobs")
        return [None]
    sweep = list(knobs) if knobs else list(method.knob_sweep) or [method.knob]
    before = method.knob
    try:
        for value in sweep:
            method.knob = value  # raises the method's error for a value out of its range
    finally:
        method.knob = before
    return sweep


def load_static(text: str, scale: int) -> tuple[str, nn.Module]:
    """``--static NAME[:CHECKPOINT]`` -> (name, model in eval mode at ``scale``): the checkpoint's weights,
    or srlab's bundled ones; in its inference form (re-parameterised models fused), as every command runs it."""
    name, _, checkpoint = text.partition(":")
    if not name.strip():
        raise SrlabError(f"--static expects NAME or NAME:CHECKPOINT (e.g. --static carn:carn.pth), got {text!r}")
    model, _ = model_with_weights(
        name.strip(), scale=scale, checkpoint=checkpoint.strip() or None, checkpoint_flag=f"--static {name}:FILE",
    )
    if spec_of(model).scale != scale:
        raise SrlabError(f"--static {text}: the weights are for x{spec_of(model).scale}, not x{scale}")
    return name.strip(), deploy(model).eval()


# ---------------------------------------------------------------------------------------------- paths


class _AsModel(nn.Module):
    """A plain network (a full path such as one width of ARM's supernet) with the adaptive model's spec, so
    that the generic inference path pads and crops for it as it would for the model."""

    def __init__(self, net: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.net = net
        self.srlab_spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class WholeImagePath(AdaptiveMethod):
    """A plain network on whole images (the generic inference path) as a method with one route: the full
    path or a static network scored the way an internally adaptive method's points are. Its MACs are
    those of the input it runs (padded to the model's size multiple), counted once per size."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__(scale=spec_of(net).scale)
        self.net = net
        self._macs_memo: dict[tuple[int, int], int] = {}

    def upscale(self, lr: torch.Tensor, *, whole_image: bool = True) -> tuple[torch.Tensor, AdaptiveStats]:
        sr = upscale_tensor(self.net, lr)
        macs = len(lr) * self._macs((lr.shape[-2], lr.shape[-1]))
        return sr, AdaptiveStats(
            route_counts=(len(lr),), route_macs=(0,), route_names=("whole image",), unit="image",
            out_hw=(sr.shape[-2], sr.shape[-1]), measured=(macs, macs),
        )

    def _macs(self, lr_hw: tuple[int, int]) -> int:
        if lr_hw not in self._macs_memo:
            info = spec_of(self.net).info
            multiple = 1 if info.pad_mode == "inside" else max(1, info.size_multiple)  # as upscale_tensor pads
            self._macs_memo[lr_hw] = count_macs(self.net, tuple(-(-side // multiple) * multiple for side in lr_hw))
        return self._macs_memo[lr_hw]

    def full_path(self) -> nn.Module:
        return self.net


class HeaviestRoute(PatchRoutedMethod):
    """A patch-routed ``method`` with every patch on its heaviest route: its full path under its own patch
    protocol (the same patches, the same merging, the same region scored)."""

    def __init__(self, method: PatchRoutedMethod) -> None:
        super().__init__(scale=method.scale, num_routes=method.num_routes)
        self.method = method
        self.patch, self.stride, self.batch_size = method.patch, method.stride, method.batch_size

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.full((len(patches),), self.num_routes - 1, dtype=torch.long, device=patches.device)

    def route_module(self, index: int) -> nn.Module:
        return self.method.route_module(index)

    def route_names(self) -> tuple[str, ...]:
        return self.method.route_names()

    def run(self, index: int, patches: torch.Tensor) -> torch.Tensor:
        return self.method.run(index, patches)

    def route_macs(self, index: int, patch_hw: tuple[int, int]) -> int:
        return self.method.route_macs(index, patch_hw)


def full_path_scored(method: AdaptiveMethod, full: nn.Module) -> AdaptiveMethod:
    """The full path ``full`` of ``method`` scored under ``method``'s evaluation protocol."""
    return HeaviestRoute(method) if isinstance(method, PatchRoutedMethod) else WholeImagePath(full)


def static_scored(method: AdaptiveMethod, net: nn.Module) -> AdaptiveMethod:
    """A static network ``net`` scored under ``method``'s evaluation protocol."""
    if not isinstance(method, PatchRoutedMethod):
        return WholeImagePath(net)
    routed = StaticRoutes(net)
    routed.patch, routed.stride, routed.batch_size = method.patch, method.stride, method.batch_size
    return routed


# ---------------------------------------------------------------------------------------------- run


def _score(model: nn.Module, folder: PairedFolder, method: AdaptiveMethod, progress: bool) -> DatasetResult:
    with torch.inference_mode():
        return evaluate_folder(model, folder, adaptive=method, progress=progress)


def _point(result: DatasetResult, **identity) -> TradeoffPoint:
    return TradeoffPoint(
        dataset=result.dataset, psnr_y=result.psnr_y, ssim_y=result.ssim_y, macs_spent=result.compute.macs_spent,
        macs_full=result.compute.macs_full, routes=result.compute.routes, **identity,
    )


def _latencies(
    runs: Sequence[Callable[[torch.Tensor], object]], folder: PairedFolder, *, scale: int, device: torch.device,
    images: int | None, repeats: int, warmup: int, threads: int | None,
) -> list[float]:
    """Each run's latency on the folder: the mean over its first ``images`` images of the interleaved medians."""
    medians: list[list[float]] = [[] for _ in runs]
    for _, lr, _ in itertools.islice(iter_folder(folder, scale), images):
        x = lr.unsqueeze(0).to(device)
        stats = measure_interleaved(
            [lambda run=run: run(x) for run in runs], device=device, repeats=repeats, warmup=warmup, threads=threads
        )
        for run_medians, stat in zip(medians, stats):
            run_medians.append(stat.median_ms)
    return [sum(m) / len(m) for m in medians]


def _at_knob(method: AdaptiveMethod, knob: float | None) -> Callable[[torch.Tensor], object]:
    def run(lr: torch.Tensor) -> object:
        method.knob = knob
        return method.upscale(lr)

    return run


def _check_inputs(
    model: nn.Module, out: Path, data: Sequence[str | Path], statics: Sequence[tuple[str, nn.Module]],
    latency_images: int | None,
) -> list[PairedFolder]:
    """Everything that can be wrong, before the long part; returns the data sets."""
    if out.exists() and not out.is_dir():
        raise SrlabError(f"--out '{out}' is a file: give a folder for the report")
    if (out / "results.json").is_file() and (out / "index.html").is_file():
        raise SrlabError(f"--out '{out}' holds a `srlab benchmark` report, whose index.html this would replace: "
                         f"give the trade-off a folder of its own, e.g. {out / 'tradeoff'}")
    if latency_images is not None and latency_images < 1:
        raise SrlabError(f"--latency_images must be >= 1, got {latency_images}")
    scale = spec_of(model).scale
    folders = [discover_pairs(d, scale) for d in data]
    for folder in folders:
        if not folder.pairs:
            raise SrlabError(f"data set '{folder.name}' holds no images at x{scale}: check the folder")
    if len({f.name for f in folders}) != len(folders):
        raise SrlabError("two data sets share a name: give folders with distinct names")
    for name, static in statics:
        if spec_of(static).scale != scale:
            raise SrlabError(f"--static {name} is x{spec_of(static).scale}, not x{scale} like --model")
    return folders


def _dataset_points(
    model: nn.Module, method: AdaptiveMethod, sweep: Sequence[float | None], statics: Sequence[tuple[str, nn.Module]],
    folder: PairedFolder, *, device: torch.device, progress: bool, **timing,
) -> list[TradeoffPoint]:
    """The points of one data set: the sweep, the full path, the static networks (see the module docstring)."""
    spec = spec_of(model)
    full = _AsModel(method.full_path(), spec).eval()
    identity = dict(model=spec.name, method=method.method_name, knob_name=method.knob_name)
    swept = []
    for knob in sweep:
        method.knob = knob
        swept.append(_point(_score(model, folder, method, progress), knob=knob, **identity))
    reference = [_point(_score(model, folder, full_path_scored(method, full), progress), knob=None, full_path=True,
                        **identity)]
    reference += [
        _point(_score(static, folder, static_scored(method, static), progress), model=name, method=None,
               knob_name=None, knob=None, static=True)
        for name, static in statics
    ]
    runs = [_at_knob(method, knob) for knob in sweep]
    runs += [lambda x: upscale_tensor(full, x)] + [lambda x, s=s: upscale_tensor(s, x) for _, s in statics]
    latencies = _latencies(runs, folder, scale=spec.scale, device=device, **timing)
    full_ms = latencies[len(sweep)]
    for point, ms in zip(swept, latencies):
        point.latency_ms, point.latency_full_ms = ms, full_ms
    for point, ms in zip(reference, latencies[len(sweep):]):
        point.latency_ms = point.latency_full_ms = ms  # they compute everything: their own full path
    return swept + reference


def run_tradeoff(
    model: nn.Module,
    method: AdaptiveMethod,
    data: Sequence[str | Path],
    out: str | Path,
    *,
    knobs: Sequence[float] | None = None,
    statics: Sequence[tuple[str, nn.Module]] = (),
    threads: int | None = None,
    repeats: int = 5,
    warmup: int = 1,
    latency_images: int | None = None,
    weights: str = "",
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> TradeoffResult:
    """Sweep ``method``'s knob on every data set of ``data`` and write the report folder ``out`` (see the
    module docstring); ``model`` is the built network ``method`` runs, ``weights`` where they came from."""
    log = log or (lambda _: None)
    out = Path(out)
    folders = _check_inputs(model, out, data, statics, latency_images)
    sweep = knob_sweep(method, knobs)
    param = next(model.parameters(), None)  # bicubic has none
    device = torch.device("cpu") if param is None else param.device
    statics = [(name, static.to(device).eval()) for name, static in statics]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()[0]
    points: list[TradeoffPoint] = []
    before = method.knob
    try:
        with torch_threads(threads) as used:
            for folder in folders:
                found = _dataset_points(model, method, sweep, statics, folder, device=device, progress=progress,
                                        images=latency_images, repeats=repeats, warmup=warmup, threads=used)
                for point in found:
                    log(_summary(point))
                points += found
    finally:
        method.knob = before
    spec = spec_of(model)
    meta = {
        "created": started.isoformat(timespec="seconds"),
        "model": spec.name, "scale": spec.scale, "weights": weights, "method": method.method_name,
        "knob_name": method.knob_name, "knobs": sweep, "static": [name for name, _ in statics],
        "data": {folder.name: str(Path(d)) for folder, d in zip(folders, data)},
        "cpu": cpu_model(), "threads": used, "torch": torch.__version__, "device": str(device),
        "latency_repeats": repeats, "latency_warmup": warmup,
        "latency_images": {f.name: min(len(f.pairs), latency_images or len(f.pairs)) for f in folders},
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "protocol": "PSNR/SSIM on Y (srlab.metrics.protocol) and MACs under the adaptive method's evaluation "
                    "protocol (patch-routed methods: the region the patch grid covers, overlapping patches counted); "
                    "latency on whole LR images: method.upscale, the full path and static networks as plain models",
    }
    result = TradeoffResult(points, meta)
    write_report(result, out)
    return result


def _summary(point: TradeoffPoint) -> str:
    return (
        f"{point.dataset:<10} {point.label:<28} {point.tag:<14} {point.psnr_y:8.4f} {point.ssim_y:.4f}  "
        f"{point.macs_spent / 1e9:8.3f} of {point.macs_full / 1e9:.3f} GMACs  "
        f"{point.latency_ms:8.2f} of {point.latency_full_ms:.2f} ms"
    )


# ---------------------------------------------------------------------------------------------- report


def tradeoff_csv(points: Sequence[TradeoffPoint]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for point in points:
        writer.writerow({k: ("" if v is None else v) for k, v in point.to_json().items()})
    return buffer.getvalue()


def tradeoff_svgs(points: Sequence[TradeoffPoint], dataset: str, threads: int) -> dict[str, str]:
    """{"macs": SVG, "latency": SVG} of one data set: a curve per adaptive model, the full path and the
    static networks as reference points."""
    mine = [p for p in points if p.dataset == dataset]
    swept = [p for p in mine if not (p.full_path or p.static)]
    references = [p for p in mine if p.full_path or p.static]
    svgs = {}
    for kind, value, x_label in (
        ("macs", lambda p: p.macs_spent / 1e9, "MACs spent (G per image)"),
        ("latency", lambda p: p.latency_ms, f"CPU latency (ms per image, {threads} thread(s))"),
    ):
        curves = [
            Curve(label, tuple(value(p) for p in group), tuple(p.psnr_y for p in group), tuple(p.tag for p in group))
            for label, group in _groups(swept)
        ]
        marks = [Point(p.label, value(p), p.psnr_y, None) for p in references]
        title = f"{dataset}: PSNR vs {'MACs' if kind == 'macs' else 'latency'}"
        svgs[kind] = curves_svg(curves, marks, title=title, x_label=x_label, y_label="PSNR (dB, Y)")
    return svgs


def _groups(points: Sequence[TradeoffPoint]) -> list[tuple[str, list[TradeoffPoint]]]:
    groups: dict[str, list[TradeoffPoint]] = {}
    for point in points:
        groups.setdefault(point.label, []).append(point)
    return list(groups.items())


def plot_names(datasets: Sequence[str]) -> dict[str, dict[str, str]]:
    """{dataset: {"macs": file, "latency": file}}: unsuffixed names when there is one data set."""
    def suffix(dataset: str) -> str:
        return "" if len(datasets) == 1 else f"_{safe_name(dataset)}"

    return {d: {"macs": f"psnr_vs_macs{suffix(d)}.svg", "latency": f"psnr_vs_latency{suffix(d)}.svg"} for d in datasets}


def render_tradeoff_html(result: TradeoffResult, names: dict[str, dict[str, str]]) -> str:
    meta = result.meta
    knob = "" if meta["knob_name"] is None else f", knob {meta['knob_name']}"
    body = [
        f'<p class="note">{_e(meta["model"])} x{meta["scale"]} through adaptive method {_e(meta["method"])}{_e(knob)} '
        f'(weights: {_e(meta["weights"] or "as built")}); created {_e(meta["created"])}. Latency: {_e(meta["cpu"])}, '
        f'{meta["threads"]} thread(s), torch {_e(meta["torch"])}, the median of {meta["latency_repeats"]} interleaved '
        f'runs per image, averaged over the images; load average {meta["load_average"][0]} at the start, '
        f'{meta["load_average"][1]} at the end (a shared machine makes timings noisy).</p>',
        f'<p class="note">{_e(meta["protocol"])}. The numbers: <a href="tradeoff.json">tradeoff.json</a>, '
        '<a href="tradeoff_meta.json">tradeoff_meta.json</a>, <a href="tradeoff.csv">tradeoff.csv</a>.</p>',
    ]
    for dataset, files in names.items():
        body += [f"<h2>{_e(dataset)}</h2>", _points_table([p for p in result.points if p.dataset == dataset]),
                 '<div class="plots">']
        body += [f'<img src="{_e(f)}" alt="{_e(f)}">' for f in files.values()]
        body.append("</div>")
    return render_page(TITLE, body)


def _points_table(points: Sequence[TradeoffPoint]) -> str:
    full = next((p for p in points if p.full_path), None)
    header = ("Model", "Knob", "PSNR", "SSIM", "dB vs full path", "GMACs", "of full", "Latency (ms)",
              "Full path (ms)", "Speed-up")
    rows = ['<table class="results">', "<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>",
            "<tbody>"]
    for p in points:
        loss = "" if full is None else f"{p.psnr_y - full.psnr_y:+.2f}"
        cells = (p.label, p.tag, f"{p.psnr_y:.2f}", f"{p.ssim_y:.4f}", loss, f"{p.macs_spent / 1e9:.3f}",
                 _ratio(p.macs_spent, p.macs_full, "{:.0%}"), f"{p.latency_ms:.2f}", f"{p.latency_full_ms:.2f}",
                 _ratio(p.latency_full_ms, p.latency_ms, "{:.2f}x"))
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    rows += ["</tbody>", "</table>"]
    return "\n".join(rows)


def _ratio(a: float, b: float, form: str) -> str:
    return form.format(a / b) if b > 0 else "n/a"  # a network without MACs (bicubic)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def write_report(result: TradeoffResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    datasets = list(dict.fromkeys(p.dataset for p in result.points))
    names = plot_names(datasets)
    files = {
        "tradeoff.json": json.dumps([p.to_json() for p in result.points], indent=2) + "\n",
        "tradeoff_meta.json": json.dumps(result.meta, indent=2) + "\n",
        "tradeoff.csv": tradeoff_csv(result.points),
    }
    for dataset in datasets:
        svgs = tradeoff_svgs(result.points, dataset, result.meta["threads"])
        files.update({names[dataset][kind]: svg for kind, svg in svgs.items()})
    files["index.html"] = render_tradeoff_html(result, names)
    for name, text in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
