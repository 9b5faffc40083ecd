"""The model zoo. Each architecture lives in its own module and registers its variants on import."""

from srlab.models import (  # noqa: F401  (explicit import list: registers the models)
    bicubic,
    bsrn,
    carn,
    ditn,
    dlgsanet,
    drcn,
    ecbsr,
    edsr,
    elan,
    espcn,
    esrt,
    etds,
    fsrcnn,
    imdn,
    ipt,
    lapsrn,
    omnisr,
    rdsr,
    rfdn,
    rlfn,
    safmn,
    shufflemixer,
    smsr,
    span,
    srcnn,
    swin2sr,
    swinir,
    tcfdn,
)
from srlab.models.complexity import count_macs, macs_720p, paper_parameter_count
from srlab.models.reparam import deploy
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
    "count_macs",
    "count_parameters",
    "deploy",
    "list_models",
    "macs_720p",
    "model_info",
    "paper_parameter_count",
    "register_model",
    "spec_of",
]
