"""srlab: efficient single-image super-resolution."""

from srlab import machine as _machine  # noqa: F401 - imported first: sets OpenMP's wait policy before torch loads
from srlab.errors import SrlabError
from srlab.layers.upsamplers import list_upsamplers
from srlab.models import deploy, list_models
from srlab.models.create import create_model

__version__ = "0.1.0"
__all__ = ["SrlabError", "create_model", "deploy", "list_models", "list_upsamplers", "__version__"]
