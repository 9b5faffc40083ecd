"""What srlab's on-disk inference caches are keyed by: where they live, the weights' digest, the device.

Shared by the path-choice cache (:mod:`srlab.inference.path_cache`) and the compiled packages
(:mod:`srlab.inference.aot`), which the path code (:mod:`srlab.inference.paths`) imports in turn.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from srlab.machine import cpu_model


def srlab_home() -> Path:
    return Path(os.environ.get("SRLAB_HOME") or Path.home() / ".cache" / "srlab")


def weights_fingerprint(model: nn.Module) -> str:
    """A digest of the model's weights: other weights may pass or fail a reduced-precision check."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def device_model(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
