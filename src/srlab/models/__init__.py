"""The model zoo. Each architecture lives in its own module and registers its variants on import."""

from srlab.models import bicubic, bsrn, imdn, rdsr, rfdn, rlfn  # noqa: F401  (explicit import list: registers the models)
from srlab.models.registry import (
    ModelInfo,
    ModelSpec,
    build_model,
    count_parameters,
    list_models,
    model_info,
    register_model,
    spec_of,
)

__all__ = [
    "ModelInfo",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "list_models",
    "model_info",
    "register_model",
    "spec_of",
]
