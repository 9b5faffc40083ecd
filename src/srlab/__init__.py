"""srlab: efficient single-image super-resolution."""

import os as _os
import sys as _sys

# OpenMP reads its wait policy once, when torch loads it: idle threads that sleep instead of spinning
# keep a shared machine from collapsing (srlab.inference.threads measured it). A user's setting stays.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_openmp_passive = "torch" not in _sys.modules and _os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"

from srlab.errors import SrlabError
from srlab.layers.upsamplers import list_upsamplers
from srlab.models import deploy, list_models
from srlab.models.create import create_model

__version__ = "0.1.0"
__all__ = ["SrlabError", "create_model", "deploy", "list_models", "list_upsamplers", "__version__"]
