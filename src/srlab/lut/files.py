"""The official look-up tables: SR-LUT's ``.npy`` files and MuLUT's folder of them.

* SR-LUT (yhjo09/SR-LUT ``3_Test_using_LUT/``): one int8 table ``Model_{S,F,V}_x{s}_{b}bit_int8.npy``
  shaped ``(levels**taps, 1, s, s)``. The field is read from the name where it follows that pattern,
  else from the entry count (17**4: S, 17**3: F, 257**2 or 17**2: V); ``--model_arg field=D`` or ``Y``
  says otherwise for 4-tap tables of those fields.
* MuLUT (ddlee-cn/MuLUT ``models/sr_x2sdy/``): a folder of ``{name}_x{s}_{b}bit_int8_s{stage}_{mode}.npy``
  tables, ``(levels**4, 1)`` for the stages before the last, ``(levels**4, s*s)`` for the last.

Files are read with ``np.load(allow_pickle=False)``: nothing in them is executed. What they hold comes
back as a :class:`LutFile`: the model that runs it, its scale, hyper-parameters and tensors (float32,
the integer table values), named as the model's state dict names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srlab.errors import SrlabError
from srlab.fileio import atomic_path

_SRLUT_NAME = re.compile(r"Model_([SDYFV])_x(\d+)_")
_MULUT_NAME = re.compile(r"(.+)_x(\d+)_(\d+)bit_int8_s(\d+)_([sdy])\.npy")
# The fields a table of so many taps is taken for when its name does not say.
_FIELD_OF_TAPS = {4: "S", 3: "F", 2: "V"}
_TAPS_OF_FIELD = {"S": 4, "D": 4, "Y": 4, "F": 3, "V": 2}
_LEVELS = tuple(2**b + 1 for b in range(9))


@dataclass(frozen=True)
class LutFile:
    model: str
    scale: int
    args: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def is_lut_path(path: Path) -> bool:
    """Whether ``path`` is a table file or a folder of MuLUT tables (what :func:`read_lut_file` reads)."""
    return path.suffix == ".npy" or (path.is_dir() and any(_MULUT_NAME.fullmatch(p.name) for p in path.iterdir()))


def read_lut_file(path: str | Path) -> LutFile:
    path = Path(path)
    return _read_mulut_folder(path) if path.is_dir() else _read_srlut(path)


def _load_table(path: Path) -> np.ndarray:
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise SrlabError(
            f"cannot read look-up table '{path}': not a NumPy .npy file of numbers, or it is corrupt "
            f"({type(e).__name__}); give an official SR-LUT/MuLUT table or a file from `srlab lut export`"
        ) from None
    if table.dtype != np.int8 or table.ndim < 2 or table.shape[0] == 0:
        raise SrlabError(
            f"look-up table '{path}' holds {table.dtype} {tuple(table.shape)}, not an int8 table "
            "(entries, outputs...): give an official SR-LUT/MuLUT table"
        )
    return table.reshape(table.shape[0], -1)


def _is_sampling(entries: int, taps: int) -> bool:
    levels = round(entries ** (1 / taps))
    return levels in _LEVELS and levels**taps == entries


def _levels_of(entries: int, taps: int, path: Path) -> int:
    if not _is_sampling(entries, taps):
        raise SrlabError(
            f"look-up table '{path}' has {entries} entries, not levels**{taps} for a sampling of 2**b + 1 "
            "levels (17**4 = 83521 for a 4-bit 2x2 table): the file is truncated or not a LUT"
        )
    return round(entries ** (1 / taps))


def _scale_of(outputs: int, path: Path) -> int:
    scale = round(outputs**0.5)
    if scale < 1 or scale * scale != outputs:
        raise SrlabError(f"look-up table '{path}' has {outputs} outputs per entry, not scale**2: not an SR table")
    return scale


def _read_srlut(path: Path) -> LutFile:
    if not path.is_file():
        raise SrlabError(f"look-up table '{path}' does not exist: check the path given to --checkpoint")
    table = _load_table(path)
    named = _SRLUT_NAME.match(path.name)
    entries = table.shape[0]
    if named:
        field = named.group(1)
    else:
        field = next((f for t, f in _FIELD_OF_TAPS.items() if _is_sampling(entries, t)), "S")
    levels = _levels_of(entries, _TAPS_OF_FIELD[field], path)
    scale = _scale_of(table.shape[1], path)
    if named and int(named.group(2)) != scale:
        raise SrlabError(f"look-up table '{path}' is named x{named.group(2)} but holds x{scale} outputs: the file was renamed")
    return LutFile("sr_lut", scale, {"field": field, "levels": levels}, {"lut": torch.from_numpy(table).float()})


def _read_mulut_folder(path: Path) -> LutFile:
    found = {p: _MULUT_NAME.fullmatch(p.name) for p in sorted(path.iterdir())}
    found = {p: m for p, m in found.items() if m}
    if not found:
        raise SrlabError(
            f"checkpoint '{path}' is a folder without MuLUT tables (*_x4_4bit_int8_s1_s.npy ...): give the "
            f"weights file in it (e.g. {path / 'best.safetensors'}) or the folder of released MuLUT tables"
        )
    names = {(m.group(1), m.group(2), m.group(3)) for m in found.values()}
    if len(names) > 1:
        listed = ", ".join(f"{n}_x{s}_{b}bit" for n, s, b in sorted(names))
        raise SrlabError(f"folder '{path}' holds several MuLUT table sets ({listed}): keep one set per folder")
    scale = int(next(iter(names))[1])
    keys = {(int(m.group(4)), m.group(5)): p for p, m in found.items()}
    stages = max(s for s, _ in keys)
    modes = "".join(m for m in "sdy" if (1, m) in keys)
    wanted = [(s, m) for s in range(1, stages + 1) for m in modes]
    missing = [f"s{s}_{m}" for s, m in wanted if (s, m) not in keys]
    if missing or len(keys) != len(wanted):
        raise SrlabError(
            f"folder '{path}' lacks MuLUT tables {', '.join(missing) or '(stages with other modes)'}: "
            "every stage needs a table for every mode"
        )
    tensors, levels = {}, None
    for stage, mode in wanted:
        file = keys[(stage, mode)]
        table = _load_table(file)
        levels = _levels_of(table.shape[0], 4, file)
        outputs = scale * scale if stage == stages else 1
        if table.shape[1] != outputs:
            raise SrlabError(f"MuLUT table '{file}' has {table.shape[1]} outputs per entry, not {outputs}")
        tensors[f"luts.s{stage}_{mode}"] = torch.from_numpy(table).float()
    return LutFile("mulut", scale, {"modes": modes, "stages": stages, "levels": levels}, tensors)


def write_npy_table(path: str | Path, table: torch.Tensor, shape: tuple[int, ...]) -> None:
    """Write a table as the official releases hold them: int8 ``.npy`` of ``shape`` (SR-LUT:
    ``(entries, 1, s, s)``; MuLUT: ``(entries, outputs)``), atomically, values rounded and clamped to
    int8 as inference uses them."""
    values = table.detach().round().clamp(-128, 127).to(torch.int8).cpu().numpy()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, values.reshape(shape), allow_pickle=False)


def write_mulut_folder(
    folder: str | Path, tables: dict[str, torch.Tensor], scale: int, levels: int, *, prefix: str = "LUT_ft"
) -> None:
    """Write a MuLUT cascade's tables (keyed ``s{stage}_{mode}``) into ``folder`` under MuLUT's names
    (what :func:`read_lut_file` reads back): ``prefix`` ``LUT_ft`` for fine-tuned tables, ``LUT`` for
    tables sampled from the network (``sr/2_transfer_to_lut.py``)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SrlabError(f"'{folder}' exists and is not a folder: give a folder for the MuLUT tables")
    folder.mkdir(parents=True, exist_ok=True)
    bits = (levels - 1).bit_length() - 1
    for key, table in tables.items():
        write_npy_table(folder / f"{prefix}_x{scale}_{bits}bit_int8_{key}.npy", table, tuple(table.shape))
