"""Look-up-table super-resolution (SR-LUT, MuLUT): sampled tables, simplex interpolation, the rotation
ensemble (:mod:`srlab.lut.interp`) and the official table files (:mod:`srlab.lut.files`). The models
themselves are ``sr_lut`` and ``mulut`` in :mod:`srlab.models.lut`."""

from srlab.lut.files import LutFile, read_lut_file
from srlab.lut.interp import FIELDS, Field, field_named, rotation_ensemble_sum, simplex_tables, stack_rotations

__all__ = [
    "FIELDS",
    "Field",
    "LutFile",
    "field_named",
    "read_lut_file",
    "rotation_ensemble_sum",
    "simplex_tables",
    "stack_rotations",
]
