"""What srlab's on-disk inference caches are keyed by: where they live, the weights' digest, srlab's code,
the device.

Shared by the path-choice cache (:mod:`srlab.inference.path_cache`) and the compiled packages
(:mod:`srlab.inference.aot`), which the path code (:mod:`srlab.inference.paths`) imports in turn.
"""

from __future__ import annotations

import functools
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


@functools.cache
def code_fingerprint() -> str:
    """A digest of srlab's own Python source. A compiled package holds the graph the code traced, and a cached
    path choice the checks that code passed: after any change to srlab (an upgrade, or an edit in a
    development checkout, e.g. to a model's forward) both are made again rather than served stale."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def device_model(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
