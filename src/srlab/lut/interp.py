"""Look-up-table inference: sampled tables, simplex interpolation and the rotation ensemble.

A LUT super-resolution model maps the ``k`` pixels of a small receptive field (its *field*) to the
``s x s`` output pixels of the field's top-left pixel. The table stores that map only at inputs that
are multiples of ``q = 2**interval`` (``levels = 256 / q + 1`` values per tap: 17 for the 4-bit tables
of SR-LUT and MuLUT), and inference interpolates between the ``k + 1`` vertices of the k-simplex that
holds the input (Jo & Kim, CVPR 2021, Eq. 3 and Table 3): with the low bits ``f`` of the taps sorted in
decreasing order ``f_(1) >= ... >= f_(k)``, the vertices are the base sample and the samples reached by
adding one step to the taps in that order, weighted ``q - f_(1), f_(1) - f_(2), ..., f_(k)``. The
weights are integers and the tables int8, so the interpolated values are exact integers (``/ q``).

Since the weights and vertex steps depend only on the low bits, they are tabulated once for all ``q**k``
low-bit combinations (:func:`simplex_tables`); inference is then gathers from those tables and one
``embedding_bag`` (a weighted sum of table rows) per pixel, vectorised in torch on any device.

The rotation ensemble (:func:`rotation_ensemble_sum`) sums the table's outputs over the four rotations
of the image, each padded at its bottom/right the way the official code pads it, rotated back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Field:
    """A receptive field: tap offsets (row, column) from the output's LR pixel, first tap most
    significant in the table index, and how far the image is padded at its bottom and right."""

    name: str
    taps: tuple[tuple[int, int], ...]
    pad_bottom: int
    pad_right: int


# SR-LUT's S (2x2), F (1x3) and V (1x2) fields (yhjo09/SR-LUT `3_Test_using_LUT/Test_Model_{S,F,V}.py`)
# and MuLUT's dilated D and Y-shaped fields (ddlee-cn/MuLUT `sr/4_test_lut.py`).
FIELDS = {
    "S": Field("S", ((0, 0), (0, 1), (1, 0), (1, 1)), 1, 1),
    "D": Field("D", ((0, 0), (0, 2), (2, 0), (2, 2)), 2, 2),
    "Y": Field("Y", ((0, 0), (1, 1), (1, 2), (2, 1)), 2, 2),
    "F": Field("F", ((0, 0), (0, 1), (0, 2)), 0, 2),
    "V": Field("V", ((0, 0), (0, 1)), 0, 1),
}


def field_named(name: str) -> Field:
    try:
        return FIELDS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown receptive field {name!r}: choose one of {', '.join(FIELDS)}") from None


def field_radius(name: str) -> int:
    """How far (LR pixels) the rotation ensemble of a field reaches in every direction."""
    return max(max(dy, dx) for dy, dx in field_named(name).taps)


def interval_of(levels: int) -> int:
    """``log2(q)`` for a table with ``levels`` samples per tap (``levels = 2**(8 - interval) + 1``)."""
    interval = next((b for b in range(9) if 2 ** (8 - b) + 1 == levels), None)
    if interval is None:
        raise ValueError(f"levels must be 2**b + 1 for b in 0..8 (17 for 4-bit sampling), got {levels}")
    return interval


@dataclass(frozen=True)
class SimplexTables:
    """For every combination of the taps' low bits (row ``sum(f_i * q**(taps-1-i))``): the taps in the
    order the simplex adds them (``order``), the ``taps + 1`` vertex weights and the vertices' index steps
    from the base sample. The interpolated value is ``sum_j weights[j] * lut[base + steps[j]] / q``."""

    order: torch.Tensor
    weights: torch.Tensor
    steps: torch.Tensor

    def to(self, device: torch.device) -> SimplexTables:
        return SimplexTables(self.order.to(device), self.weights.to(device), self.steps.to(device))


@functools.cache
def simplex_tables(
    taps: int, interval: int, *, srlut_order: bool = False, device: torch.device | str = "cpu"
) -> SimplexTables:
    """The simplex tables of ``taps``-tap fields sampled every ``2**interval`` levels, on ``device``.
    ``srlut_order`` reproduces the simplex choice of SR-LUT's 4-D test code."""
    if torch.device(device) != torch.device("cpu"):
        return simplex_tables(taps, interval, srlut_order=srlut_order).to(torch.device(device))
    q, levels = 2**interval, 2 ** (8 - interval) + 1
    low = torch.cartesian_prod(*[torch.arange(q)] * taps).reshape(-1, taps)  # first tap most significant
    order = torch.sort(low, dim=1, descending=True, stable=True).indices
    if srlut_order and taps == 4:
        # SR-LUT's test code reaches the simplex (c, a, d, b) for every c > d >= b with b < a <= c, but it
        # is that ordering's simplex only when a >= d: for c > d > a > b it takes the wrong one (MuLUT's
        # test code notes and fixes this). Its released tables are reproduced with its choice.
        fa, fb, fc, fd = low.unbind(1)
        wrong = (fa > fb) & (fc >= fa) & (fd >= fb) & (fc > fd)
        order = torch.where(wrong[:, None], torch.tensor([2, 0, 3, 1]), order)
    strides = levels ** torch.arange(taps - 1, -1, -1)
    steps = torch.cat([torch.zeros(len(low), 1, dtype=torch.long), strides[order].cumsum(1)], dim=1)
    return SimplexTables(order.int(), _vertex_weights(low.gather(1, order), q).float(), steps.int())


def _vertex_weights(ordered: torch.Tensor, q: int) -> torch.Tensor:
    """``q - f_(1), f_(1) - f_(2), ..., f_(k)`` from the low parts in simplex order ``(N, k)``."""
    return torch.cat([q - ordered[:, :1], ordered[:, :-1] - ordered[:, 1:], ordered[:, -1:]], dim=1)


def rotated_taps(field: Field, turns: int) -> tuple[tuple[int, int], ...]:
    """The field's taps, as offsets in the original image, for its run on the image rotated
    ``turns`` x 90 degrees counter-clockwise (``torch.rot90(image, turns)``)."""
    turn = {0: lambda dy, dx: (dy, dx), 1: lambda dy, dx: (dx, -dy), 2: lambda dy, dx: (-dy, -dx),
            3: lambda dy, dx: (-dx, dy)}[turns % 4]
    return tuple(turn(dy, dx) for dy, dx in field.taps)


def stack_rotations(lut: torch.Tensor, scale: int) -> torch.Tensor:
    """The table four times, ``(4 * entries, scale**2)``: block ``r`` holds each output block turned back
    by ``r`` quarter turns, so that the outputs of the four rotations add up in the original frame."""
    cells = torch.arange(scale * scale, device=lut.device).reshape(scale, scale)
    return torch.cat([lut[:, torch.rot90(cells, -turns, dims=(0, 1)).reshape(-1)] for turns in range(4)])


def rotation_ensemble_sum(
    image: torch.Tensor,
    stacked_lut: torch.Tensor,
    field: Field,
    interval: int,
    scale: int,
    *,
    pad_mode: str,
    srlut_order: bool = False,
) -> torch.Tensor:
    """``q`` times the sum of the table's interpolated outputs over the four rotations of ``image``
    ((B, H, W) float, integer values 0..255), each rotation padded at its bottom/right in ``pad_mode``
    ("reflect": SR-LUT, "replicate": MuLUT) and rotated back; ``(B, H * scale, W * scale)``.

    ``stacked_lut`` is :func:`stack_rotations` of the table. Instead of rotating the image four times,
    each rotation's taps are read at their rotated offsets in the image padded on every side (padding
    one side commutes with rotating), and its outputs come from its block of the stacked table, turned
    back already: one weighted sum of ``4 x (taps + 1)`` table rows per pixel. Differentiable in the
    table, and in ``image`` where it requires a gradient (a stage fed by another, in LUT-aware
    fine-tuning): the vertex weights are then the differences of the taps' low parts
    ``image - q * floor(image / q)``, equal in value to the tabulated integer weights.
    """
    taps, q, levels = len(field.taps), 2**interval, 2 ** (8 - interval) + 1
    tables = simplex_tables(taps, interval, srlut_order=srlut_order, device=image.device)
    margin = field_radius(field.name)
    padded = F.pad(image[:, None], (margin,) * 4, mode=pad_mode)[:, 0]
    batch, height, width = image.shape

    def window(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        return x[:, margin + dy : margin + dy + height, margin + dx : margin + dx + width]

    pixels = padded.detach().to(torch.int32)
    high, low = pixels >> interval, pixels & (q - 1)
    entries = stacked_lut.shape[0] // 4
    bases, keys = [], []
    for turns in range(4):
        base = key = torch.zeros((), dtype=torch.int32, device=image.device)
        for dy, dx in rotated_taps(field, turns):
            base = base * levels + window(high, dy, dx)
            key = key * q + window(low, dy, dx)
        bases.append(base + turns * entries)  # rotation `turns` reads its block of the stacked table
        keys.append(key)
    # (pixel, rotation) rows: the simplex vertices of all four rotations of a pixel form one bag.
    key = torch.stack(keys, dim=-1).reshape(-1)
    vertices = tables.steps.index_select(0, key).view(-1, 4, taps + 1).add_(torch.stack(bases, -1).view(-1, 4, 1))
    if padded.requires_grad:
        fraction = padded - q * high.to(padded.dtype)
        low_parts = torch.stack(
            [torch.stack([window(fraction, dy, dx) for dy, dx in rotated_taps(field, t)], -1) for t in range(4)], -2
        ).reshape(-1, taps)
        weights = _vertex_weights(low_parts.gather(1, tables.order.index_select(0, key).long()), q)
    else:
        weights = tables.weights.index_select(0, key)
    total = F.embedding_bag(
        vertices.view(-1, 4 * (taps + 1)), stacked_lut, mode="sum",
        per_sample_weights=weights.reshape(-1, 4 * (taps + 1)).to(stacked_lut.dtype),
    )
    return total.reshape(batch, height, width, scale, scale).permute(0, 1, 3, 2, 4).reshape(
        batch, height * scale, width * scale
    )
