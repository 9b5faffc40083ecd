"""Metrics by name, for ``srlab eval --metrics`` and ``srlab benchmark``.

PSNR and SSIM always come from the evaluation protocol (``srlab.metrics.protocol``); the others are
scored on the same pair the protocol sees: the SR output rounded to 8-bit levels (as saved) against
its HR image, ``scale`` pixels shaved from each side, on the luma (MS-SSIM, GMSD, FSIM) or in colour
(FSIMc, LPIPS, DISTS; NIQE looks at the SR image alone). LPIPS, DISTS and NIQE need weight files the
user provides, named by key (``--metric_weights KEY=PATH``): ``lpips_backbone`` (torchvision's AlexNet,
or VGG16 / SqueezeNet with ``lpips_net``) and ``lpips_lin`` (the ``lpips`` package's linear weights),
``dists_backbone`` (torchvision's VGG16) and ``dists`` (``DISTS_pytorch``'s weights.pt), ``niqe`` (the
pristine model, ``modelparameters.mat``). Any other callable joins from Python through ``TaskMetric``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from srlab.errors import SrlabError
from srlab.metrics.fsim import fsim, fsimc
from srlab.metrics.gmsd import gmsd
from srlab.metrics.ms_ssim import ms_ssim

# name -> f(sr, hr, scale) on (3, H, W) float images in [0, 1]
_EXTRA: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "ms_ssim": lambda sr, hr, s: ms_ssim(sr, hr, channel="y", crop_border=s),
    "gmsd": lambda sr, hr, s: gmsd(sr, hr, crop_border=s),
    "fsim": lambda sr, hr, s: fsim(hr, sr, crop_border=s),
    "fsimc": lambda sr, hr, s: fsimc(hr, sr, crop_border=s),
}
PROTOCOL_METRICS = ("psnr", "ssim")
LEARNED_METRICS = ("lpips", "dists", "niqe")
METRIC_NAMES = PROTOCOL_METRICS + tuple(_EXTRA) + LEARNED_METRICS
# What each learned metric needs from --metric_weights, and what the file is.
_WEIGHT_FILES = {
    "lpips": {"lpips_backbone": "torchvision's alexnet-owt-7be5be79.pth (or the VGG16 / SqueezeNet file, "
                                "with lpips_net=vgg|squeeze)",
              "lpips_lin": "the lpips package's lpips/weights/v0.1/alex.pth"},
    "dists": {"dists_backbone": "torchvision's vgg16-397923af.pth", "dists": "DISTS_pytorch's weights.pt"},
    "niqe": {"niqe": "NIQE's modelparameters.mat (or an .npz with mu_prisparam, cov_prisparam)"},
}
WEIGHT_KEYS = tuple(k for files in _WEIGHT_FILES.values() for k in files) + ("lpips_net",)


class MetricSet:
    """The extra metrics of an evaluation, built once (learned ones load their weights here)."""

    def __init__(self, names: Sequence[str] = (), weights: Mapping[str, str] | None = None) -> None:
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(WEIGHT_KEYS))
        if unknown:
            raise SrlabError(
                f"--metric_weights: unknown key {', '.join(map(repr, unknown))}: use {', '.join(WEIGHT_KEYS)}"
            )
        self.names = tuple(names)
        self._scorers: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {}
        for name in self.names:
            if name in _EXTRA:
                self._scorers[name] = _EXTRA[name]
                continue
            missing = [k for k in _WEIGHT_FILES[name] if k not in weights]
            if missing:
                key = missing[0]
                raise SrlabError(
                    f"metric {name!r} needs --metric_weights {key}=PATH ({_WEIGHT_FILES[name][key]})"
                )
            self._scorers[name] = _learned(name, weights)

    def scores(self, sr8: Tensor, hr: Tensor, scale: int) -> dict[str, float]:
        return {name: float(self._scorers[name](sr8, hr, scale)) for name in self.names}


def _shaved(x: Tensor, border: int) -> Tensor:
    return x[..., border : x.shape[-2] - border, border : x.shape[-1] - border] if border else x


def _learned(name: str, weights: Mapping[str, str]) -> Callable[[Tensor, Tensor, int], Tensor]:
    # imported here: these modules build networks, which plain PSNR/SSIM evaluations never need
    if name == "lpips":
        from srlab.metrics.lpips import LPIPS

        net = LPIPS(
            weights.get("lpips_net", "alex"), lin_weights=weights["lpips_lin"],
            backbone_weights=weights["lpips_backbone"],
        ).double()
        return lambda sr, hr, s: net(_shaved(sr, s), _shaved(hr, s))
    if name == "dists":
        from srlab.metrics.dists import DISTS

        net = DISTS(weights=weights["dists"], backbone_weights=weights["dists_backbone"]).double()
        return lambda sr, hr, s: net(_shaved(sr, s), _shaved(hr, s))
    from srlab.metrics.niqe import NIQE

    model = NIQE(weights["niqe"])
    return lambda sr, hr, s: model(_shaved(sr, s))


def parse_metric_weights(assignments: Sequence[str]) -> dict[str, str]:
    """``["lpips_lin=alex.pth", ...]`` -> {"lpips_lin": "alex.pth", ...}."""
    parsed = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SrlabError(f"--metric_weights expects KEY=PATH, got {item!r} (e.g. --metric_weights niqe=modelparameters.mat)")
        parsed[key.strip()] = value.strip()
    return parsed


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"psnr,ssim,gmsd"`` -> the extra metrics to compute, ``("gmsd",)``; unknown names are errors."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise SrlabError(
            f"unknown metric {', '.join(map(repr, unknown))}: choose from {', '.join(METRIC_NAMES)} "
            "(lpips, dists and niqe also need --metric_weights files)"
        )
    return tuple(dict.fromkeys(n for n in names if n not in PROTOCOL_METRICS))


def extra_scores(metrics: MetricSet | Sequence[str], sr: Tensor, hr: Tensor, scale: int) -> dict[str, float]:
    """The extra metrics of one SR image (rounded to 8-bit levels first, as the protocol does)."""
    if not isinstance(metrics, MetricSet):
        metrics = MetricSet(metrics)
    if not metrics.names:
        return {}
    sr8 = torch.floor(sr.detach().to(torch.float64).clamp(0, 1) * 255 + 0.5) / 255
    hr64 = hr.detach().to(torch.float64)
    if sr8.shape[0] == 1:  # a grey picture
        sr8, hr64 = sr8.expand(3, *sr8.shape[1:]), hr64.expand(3, *hr64.shape[1:])
    return metrics.scores(sr8, hr64, scale)
