"""Corrupt, truncated or hostile weight files of the learned and statistical metrics (LPIPS / DISTS
backbones and heads, the NIQE pristine model): each is an SrlabError naming the file, never a traceback."""

from __future__ import annotations

import argparse
import io

import numpy as np
import pytest
import scipy.io
import torch

from srlab.errors import SrlabError
from srlab.metrics.backbones import SqueezeNet11Features, load_torchvision_weights
from srlab.metrics.niqe import NiqeModel


def _pristine() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((36, 36))
    return {"mu_prisparam": rng.standard_normal((1, 36)), "cov_prisparam": a @ a.T}


def _mat_bytes() -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, _pristine())
    return buffer.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(36))
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "content"), [
    ("garbage.mat", b"MATLAB 5.0 MAT-file, but not really" * 8),
    ("truncated.mat", "mat_half"),
    ("garbage.npz", b"\x00\x01 not an archive"),
    ("truncated.npz", "npz_half"),
    ("array.npz", "npy"),  # an .npy array under an .npz name
    ("objects.npz", "objects"),  # pickled object arrays: refused, never unpickled
])
def test_unreadable_niqe_models(tmp_path, name, content):
    data = {
        "mat_half": _mat_bytes()[:300], "npz_half": _npz_bytes(**_pristine())[:400], "npy": _npy_bytes(),
        "objects": _npz_bytes(mu_prisparam=np.array([{"a": 1}] * 36, dtype=object), cov_prisparam=np.eye(36)),
    }.get(content, content)
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SrlabError, match=f"cannot read the NIQE pristine model {path}: not a MATLAB .mat or numpy "
                                         r"\.npz file, or corrupt"):
        NiqeModel.load(path)


def test_niqe_model_of_text_is_refused(tmp_path):
    path = tmp_path / "text.npz"
    path.write_bytes(_npz_bytes(mu_prisparam=np.array(["x"] * 36), cov_prisparam=np.eye(36)))
    with pytest.raises(SrlabError, match=f"{path}: mu_prisparam / cov_prisparam are not arrays of numbers"):
        NiqeModel.load(path)


def test_a_good_niqe_model_still_loads(tmp_path):
    (tmp_path / "good.mat").write_bytes(_mat_bytes())
    model = NiqeModel.load(tmp_path / "good.mat")
    assert torch.equal(model.mu, torch.from_numpy(_pristine()["mu_prisparam"].reshape(-1)))


@pytest.mark.parametrize(("content", "message"), [
    (b"\x80\x02 garbage", "cannot read .* as a PyTorch state dict"),
    ({"features.0.weight": torch.zeros(1), 3: torch.zeros(1)}, "is not a state dict of tensors"),
    ({"features.0.weight": torch.zeros(1), "opts": argparse.Namespace(lr=1)}, "cannot read .* as a PyTorch state dict"),
])
def test_unreadable_backbone_weights(tmp_path, content, message):
    path = tmp_path / "squeezenet1_1.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(SrlabError, match=message) as e:
        load_torchvision_weights(SqueezeNet11Features(), path)
    assert str(path) in str(e.value)
