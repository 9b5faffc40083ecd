"""Writes ``dip_official.npz``, the official Deep Image Prior code's outputs that ``test_dip.py`` compares
srlab's with. Run once with a checkout of DmitryUlyanov/deep-image-prior (its ``models`` package needs
only torch and numpy); the file records the commit it was made from:

    python tests/unsupervised/make_dip_fixture.py PATH/TO/deep-image-prior COMMIT

Everything random comes from numpy's seeded generator, so the fixture does not depend on how a torch
version initialises layers: the weights of the official SR network (``get_net(32, 'skip', 'reflection',
skip_n33d=128, skip_n33u=128, skip_n11=4, num_scales=5, upsample_mode='bilinear')``), its input noise at
two sizes (one not a multiple of 32), and an image for the official ``Downsampler``. The inputs are not
stored (the file stays small): :func:`fixture_inputs` remakes them, and their sums are kept as a check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

SIZES = ((64, 64), (40, 72))  # the network's input sizes; 40 x 72 makes the official Concat crop


def fixture_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A seeded, torch-independent value for every float entry (BatchNorm's running statistics too)."""
    rng = np.random.default_rng(2018)
    weights = {}
    for name, tensor in state_dict.items():
        if not tensor.is_floating_point():
            continue
        values = rng.standard_normal(tuple(tensor.shape)).astype(np.float32)
        if name.endswith(("running_var", "weight")) and tensor.dim() == 1:  # BatchNorm scales: around 1
            values = 1 + 0.1 * values
        elif tensor.dim() == 4:  # conv weights: fan-in scaled, so that activations stay in range
            values *= np.float32(1 / np.sqrt(tensor[0].numel()))
        else:
            values *= np.float32(0.1)
        weights[name] = values
    return weights


def fixture_inputs() -> dict[str, np.ndarray]:
    """The network's input noise at each of SIZES (uniform in [0, 0.1), as ``get_noise``) and the
    downsampler's input image."""
    rng = np.random.default_rng(30)
    inputs = {f"noise_{h}x{w}": (0.1 * rng.random((1, 32, h, w))).astype(np.float32) for h, w in SIZES}
    inputs["downsampler_input"] = rng.random((1, 3, 48, 32)).astype(np.float32)
    return inputs


def main(official: Path, commit: str) -> None:
    sys.path.insert(0, str(official))
    from models import get_net
    from models.downsampler import Downsampler

    net = get_net(32, "skip", "reflection", skip_n33d=128, skip_n33u=128, skip_n11=4, num_scales=5,
                  upsample_mode="bilinear")
    state = net.state_dict()
    weights = fixture_weights(state)
    net.load_state_dict({k: torch.from_numpy(weights[k]) if k in weights else v for k, v in state.items()})
    net.train()  # as the SR notebook runs it: BatchNorm with the batch's statistics
    inputs = fixture_inputs()
    record = {
        "commit": np.array(commit),
        "keys": np.array(json.dumps([[k, list(v.shape)] for k, v in state.items()])),
    }
    with torch.no_grad():
        for height, width in SIZES:
            record[f"output_{height}x{width}"] = net(torch.from_numpy(inputs[f"noise_{height}x{width}"])).numpy()
        downsampler = Downsampler(n_planes=3, factor=4, kernel_type="lanczos2", phase=0.5, preserve_size=True)
        record["downsampler_kernel_x4"] = downsampler.kernel
        record["downsampler_output_x4"] = downsampler(torch.from_numpy(inputs["downsampler_input"])).numpy()
    record["input_sums"] = np.array([inputs[k].astype(np.float64).sum() for k in sorted(inputs)])
    np.savez_compressed(Path(__file__).with_name("dip_official.npz"), **record)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
