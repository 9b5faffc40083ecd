"""Look-up-table SR: SR-LUT and MuLUT, run from their tables.

* ``sr_lut`` — Jo & Kim, "Practical Single-Image Super-Resolution Using Look-Up Table", CVPR 2021
  (yhjo09/SR-LUT, no licence stated). One table of ``levels**taps x scale**2`` entries over a receptive
  field S (2x2), F (1x3), V (1x2), or MuLUT's D / Y; 4-simplex (3-, 2-) interpolation and the rotation
  ensemble on each colour plane. Computes exactly what the official ``3_Test_using_LUT/Test_Model_*.py``
  compute (the same uint8 outputs): inputs padded by reflection at the bottom/right of each rotation,
  ``round(clip(sum / q / 255, 0, 1) * 255)`` in float64, and — for 4-tap fields, ``srlut_order=True`` —
  its simplex choice for the ordering c > d > a > b (:func:`srlab.lut.interp.simplex_tables`).
* ``mulut`` — Li et al., "MuLUT: Cooperating Multiple Look-Up Tables for Efficient Image
  Super-Resolution", ECCV 2022 (ddlee-cn/MuLUT, MIT). ``stages`` cascaded stages of one table per mode
  (S, D, Y); each stage sums its modes' rotation ensembles; stages before the last keep the size and
  map back to pixels as ``round(clip(sum / q / (4 * modes) + 127, 0, 255))``, the last upscales:
  ``round(clip(sum / q / modes, 0, 255))``; edge padding. Exactly ``sr/4_test_lut.py``.

The tables are float32 parameters holding the table values, so that LUT-aware fine-tuning (MuLUT's
``sr/3_finetune_lut.py``) trains them: ``srlab train --model sr_lut --init_from TABLE`` (a released
``.npy``, or a ``.lut`` from ``srlab lut export``). The models always run their tables rounded and
clamped to int8 (straight through while training). While a gradient is being recorded the output
rounding is a straight-through estimator too, and a stage fed by another interpolates differentiably
in its input; inference quantises through exact tables of the float64 expressions above. Official
tables load with ``--checkpoint`` (a ``.npy`` for ``sr_lut``, the folder of tables for ``mulut``;
:mod:`srlab.lut.files`). The learning rate is in table units (MuLUT trains the table divided by 127).

Deviations: none at inference; inputs are taken as 8-bit images (``round(255 x)``). MuLUT's fine-tuning
forward also rounds its running sum after every rotation; srlab rounds each stage's output once.
"""

from __future__ import annotations

import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.lut.interp import field_named, field_radius, interval_of, rotation_ensemble_sum, stack_rotations
from srlab.models.registry import ModelInfo, register_model


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N*C, H, W) float32 integer values 0..255 (each plane runs alone)."""
    n, c, h, w = x.shape
    return (x.detach().float() * 255).round().clamp(0, 255).reshape(n * c, h, w)


def straight_through_round(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded in the forward pass, the identity in the backward pass (the LUT models' and MuLUT's network's)."""
    return x + (x.round() - x).detach()


def check_mulut_modes(modes: str) -> None:
    """MuLUT's modes: distinct letters of ``sdy`` (its tables and its network take the same)."""
    if not modes or any(m not in "sdy" for m in modes) or len(set(modes)) != len(modes):
        raise ValueError(f"modes must be distinct letters of 'sdy', got {modes!r}")


class _QuantizeTable(nn.Module):
    """The exact float64 result of an integer sum ``T`` (``lo <= T <= hi``), looked up."""

    def __init__(self, lo: int, hi: int, values: torch.Tensor) -> None:
        super().__init__()
        self.lo = lo
        self.register_buffer("values", values.float(), persistent=False)

    def forward(self, total: torch.Tensor) -> torch.Tensor:
        index = total.reshape(-1).to(torch.int32).sub_(self.lo)
        return self.values.index_select(0, index).reshape(total.shape)


class _RotationStacks:
    """The rotation-stacked form of a model's tables (:func:`srlab.lut.interp.stack_rotations`), built
    again only when a table changes (its version, storage, device or dtype) or a gradient is recorded."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[tuple, torch.Tensor]] = {}

    def get(self, name: str, table: nn.Parameter, scale: int) -> torch.Tensor:
        # embedding_bag runs in float32/float64; half-precision models keep exact integer sums in float32.
        lut = table if table.dtype in (torch.float32, torch.float64) else table.float()
        if torch.is_grad_enabled() and table.requires_grad:
            return stack_rotations(_as_int8(lut), scale)
        key = (table._version, table.data_ptr(), lut.dtype, lut.device)
        if name not in self._built or self._built[name][0] != key:
            self._built[name] = (key, stack_rotations(_as_int8(lut.detach()), scale))
        return self._built[name][1]


def _as_int8(lut: torch.Tensor) -> torch.Tensor:
    """The table as the int8 file it stands for: a fine-tuned table runs rounded (straight through while
    training, as MuLUT's LUT-aware fine-tuning does) and clamped; integer tables pass unchanged."""
    return straight_through_round(lut).clamp(-128, 127)


class SRLUT(nn.Module):
    def __init__(self, *, scale: int, field: str, levels: int, srlut_order: bool) -> None:
        super().__init__()
        self.scale = scale
        self.field = field_named(field)
        self.interval = interval_of(levels)
        self.srlut_order = srlut_order
        self.lut = nn.Parameter(torch.zeros(levels ** len(self.field.taps), scale * scale))
        q = 2**self.interval
        lo, hi = -4 * q * 128, 4 * q * 127
        total = torch.arange(lo, hi + 1, dtype=torch.float64)
        self.to_image = _QuantizeTable(lo, hi, torch.round(torch.clip(total / q / 255.0, 0, 1) * 255) / 255)
        self.stacks = _RotationStacks()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pad = max(self.field.pad_bottom, self.field.pad_right)
        if min(h, w) <= pad:
            raise SrlabError(f"sr_lut ({self.field.name}) needs images of at least {pad + 1}x{pad + 1} pixels, got {w}x{h}")
        pixels = _pixels(x).to(self.lut.device)
        lut = self.stacks.get("lut", self.lut, self.scale)
        total = rotation_ensemble_sum(
            pixels, lut, self.field, self.interval, self.scale, pad_mode="reflect", srlut_order=self.srlut_order
        )
        if total.requires_grad:
            q = 2**self.interval
            out = straight_through_round((total / (q * 255.0)).clamp(0, 1) * 255) / 255
        else:
            out = self.to_image(total)
        return out.reshape(n, c, h * self.scale, w * self.scale).to(x.dtype)


class MuLUT(nn.Module):
    def __init__(self, *, scale: int, modes: str, stages: int, levels: int) -> None:
        super().__init__()
        check_mulut_modes(modes)
        self.scale, self.modes, self.stages = scale, modes, stages
        self.interval = interval_of(levels)
        self.luts = nn.ParameterDict({
            f"s{stage}_{mode}": nn.Parameter(torch.zeros(levels**4, scale * scale if stage == stages else 1))
            for stage in range(1, stages + 1)
            for mode in modes
        })
        q, count = 2**self.interval, len(modes) * 4
        lo, hi = -count * q * 128, count * q * 127
        total = torch.arange(lo, hi + 1, dtype=torch.float64)
        self.to_pixels = _QuantizeTable(lo, hi, torch.round(torch.clip(torch.clip(total / q / count + 127, 0, 255), 0, 255)))
        self.to_image = _QuantizeTable(lo, hi, torch.round(torch.clip(total / q / len(modes), 0, 255)) / 255)
        self.stacks = _RotationStacks()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        image = _pixels(x).to(self.luts["s1_" + self.modes[0]].device)
        q = 2**self.interval
        for stage in range(1, self.stages + 1):
            last = stage == self.stages
            scale = self.scale if last else 1
            total = sum(
                rotation_ensemble_sum(
                    image, self.stacks.get(f"s{stage}_{mode}", self.luts[f"s{stage}_{mode}"], scale),
                    field_named(mode), self.interval, scale, pad_mode="replicate",
                )
                for mode in self.modes
            )
            if total.requires_grad:  # LUT-aware fine-tuning: rounded forward, identity backward
                if last:
                    image = straight_through_round((total / (q * len(self.modes))).clamp(0, 255)) / 255
                else:
                    image = straight_through_round((total / (q * 4 * len(self.modes)) + 127).clamp(0, 255))
            else:
                image = (self.to_image if last else self.to_pixels)(total)
        return image.reshape(n, c, h * self.scale, w * self.scale).to(x.dtype)


def _info(paper: str, origin: str, licence: str, radius) -> ModelInfo:
    return ModelInfo(
        paper=paper,
        origin=origin,
        licence=licence,
        scales=(2, 3, 4),
        size_multiple=1,
        # The official code pads each rotation itself (reflect / edge): the inference path leaves it to them.
        pad_mode="inside",
        receptive_radius=radius,
        reparameterizable=False,
        half_precision_safe=True,
    )


@register_model(
    _info(
        "Jo & Kim, Practical Single-Image Super-Resolution Using Look-Up Table (SR-LUT, CVPR 2021)",
        "https://github.com/yhjo09/SR-LUT",
        "unknown",
        lambda a: field_radius(a["field"]),
    )
)
def sr_lut(*, scale: int, field: str = "S", levels: int = 17, srlut_order: bool = True) -> SRLUT:
    """SR-LUT over ``field`` S/D/Y/F/V, ``levels`` samples per tap (17: 4-bit; the released V table: 257);
    ``srlut_order=False`` interpolates 4-tap fields on the correctly ordered simplex everywhere."""
    return SRLUT(scale=scale, field=field, levels=levels, srlut_order=srlut_order)


@register_model(
    _info(
        "Li et al., MuLUT: Cooperating Multiple Look-Up Tables for Efficient Image Super-Resolution (ECCV 2022)",
        "https://github.com/ddlee-cn/MuLUT",
        "MIT",
        lambda a: 2 * a["stages"] if set(a["modes"]) & set("dy") else a["stages"],
    )
)
def mulut(*, scale: int, modes: str = "sdy", stages: int = 2, levels: int = 17) -> MuLUT:
    """MuLUT: ``stages`` stages of one table per mode of ``modes`` (letters of s, d, y)."""
    return MuLUT(scale=scale, modes=modes, stages=stages, levels=levels)
