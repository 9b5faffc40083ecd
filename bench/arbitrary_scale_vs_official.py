"""srlab's arbitrary-scale models against their official code, same random weights, on the CPU.

Usage: python bench/arbitrary_scale_vs_official.py --liif DIR --lte DIR --metasr DIR

Each DIR is a checkout of the official repository (yinboc/liif, jaewon-lee-b/lte,
XuecaiHu/Meta-SR-Pytorch); their modules are imported from there, never copied. The official model is
built with random weights, its ``state_dict`` loaded strictly into srlab's model, and both render the
same LR image at several output sizes: LIIF and LTE through the official ``make_coord`` / cell /
``data_norm`` path of ``test.py``, Meta-RDN through ``trainer.py::input_matrix_wpn`` and its mask.
Imports the official code needs and does not use here are stubbed (tensorboardX; LTE's SwinIR, which
needs timm), and ``.cuda()`` is made a no-op.

Measured 2026-12-05 (Intel Xeon, torch 2.13 CPU): LIIF and LTE bit-identical at 34x26, 26x20, 100x78
and 17x13 from a 17x13 input; Meta-RDN at x1.5, 2, 2.5, 2.7, 3.3, 4 from 9x11 within 2.4e-6 on [0, 1]
(same features and same per-pixel filters; the last bits differ in the filter-times-feature products).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import math
import sys
import types
from pathlib import Path

import torch

import srlab


def _import_fresh(root: Path, name: str):
    """Import module ``name`` from ``root``, dropping any same-named modules of another checkout."""
    for key in [k for k in sys.modules if k in ("models", "utils", "model") or k.startswith(("models.", "model."))]:
        del sys.modules[key]
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _implicit(root: Path, spec: dict, srlab_name: str) -> None:
    models = _import_fresh(root, "models")
    utils = _import_fresh(root, "utils")
    sys.modules["models"] = models  # the official modules import `models` at call time too
    official = models.make(spec).eval()
    with torch.no_grad():
        for p in official.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    mine = srlab.create_model(srlab_name, scale=2).eval()
    mine.load_state_dict(official.state_dict(), strict=True)
    lr = torch.rand(1, 3, 17, 13)
    for height, width in [(34, 26), (26, 20), (100, 78), (17, 13)]:
        coord = utils.make_coord((height, width)).unsqueeze(0)
        cell = torch.ones_like(coord)
        cell[:, :, 0] *= 2 / height
        cell[:, :, 1] *= 2 / width
        with torch.no_grad():
            ref = official((lr - 0.5) / 0.5, coord, cell) * 0.5 + 0.5
            ref = ref.view(1, height, width, 3).permute(0, 3, 1, 2)
            got = mine(lr, size=(height, width))
        diff = (ref - got).abs().max()
        print(f"{srlab_name} {height}x{width}: identical {torch.equal(ref, got)}, max |diff| {diff:.3g}")


def _metasr(root: Path) -> None:
    metardn = _import_fresh(root, "model.metardn")
    # trainer.py's input_matrix_wpn, executed from its source (trainer.py imports what is not installed)
    tree = ast.parse((root / "trainer.py").read_text())
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "input_matrix_wpn")
    namespace = {"torch": torch, "math": math}
    exec(compile(ast.Module([function], []), "input_matrix_wpn", "exec"), namespace)
    position_matrix = namespace["input_matrix_wpn"]
    args = argparse.Namespace(scale=[2.0], G0=64, RDNkSize=3, RDNconfig="B", rgb_range=255, n_colors=3)
    official = metardn.MetaRDN(args).eval()
    mine = srlab.create_model("metasr_rdn", scale=2).eval()
    mine.load_state_dict(official.state_dict(), strict=True)
    lr = torch.rand(1, 3, 9, 11)
    for scale in [1.5, 2, 2.5, 2.7, 3.3, 4]:
        official.scale, mine.scale = scale, scale
        height, width = int(9 * scale), int(11 * scale)
        pos, mask = position_matrix(None, 9, 11, scale)
        with torch.no_grad():
            ref = torch.masked_select(official(lr * 255, pos), mask).view(1, 3, height, width) / 255
            got = mine(lr, size=(height, width))
        print(f"metasr_rdn x{scale}: identical {torch.equal(ref, got)}, max |diff| {(ref - got).abs().max():.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--liif", type=Path, required=True)
    parser.add_argument("--lte", type=Path, required=True)
    parser.add_argument("--metasr", type=Path, required=True)
    options = parser.parse_args()
    sys.modules.setdefault("tensorboardX", types.SimpleNamespace(SummaryWriter=None))
    timm = types.ModuleType("timm")
    timm.models = types.ModuleType("timm.models")
    timm.models.layers = types.SimpleNamespace(DropPath=None, to_2tuple=None, trunc_normal_=None)
    sys.modules.update({"timm": timm, "timm.models": timm.models, "timm.models.layers": timm.models.layers})
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.manual_seed(0)
    encoder = {"name": "edsr-baseline", "args": {"no_upsampling": True}}
    _implicit(options.liif, {"name": "liif", "args": {
        "encoder_spec": encoder, "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256] * 4}}}},
        "liif_edsr_baseline")
    _implicit(options.lte, {"name": "lte", "args": {
        "encoder_spec": encoder, "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256] * 3}},
        "hidden_dim": 256}}, "lte_edsr_baseline")
    _metasr(options.metasr)


if __name__ == "__main__":
    main()
