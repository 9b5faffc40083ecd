"""ARM (Chen et al., "ARM: Any-Time Super-Resolution Method", ECCV 2022) through the adaptive engine.

The routes are the supernet's subnets in the lookup table's order: route 0 is bicubic interpolation
(PyTorch's, unclamped, as the official test), route j the subnet of width ``model.widths[j - 1]``, the
last one the full network. A patch's route is the official rule
(:func:`srlab.models.arm_lookup.choose_subnets`): the subnet that maximises ``eta * predicted PSNR -
cost`` for the patch's edge score. The knob is ``eta`` in units of the full network's cost per patch
(``eta = knob * cost[-1]``, the official test's ``k * cost_list[-1]``): larger spends more.

As the official test, each SR patch is clamped to [0, 1] and rounded to 8-bit levels before the
patches are merged (:meth:`ArmRouting.run`), so the merged image equals the official loop's
(`tests/adaptive/test_arm_routing.py`, against :func:`srlab.models.arm_lookup.arm_upscale_patches`).
The same routes chosen by srlab's learned router instead of the table: :mod:`srlab.adaptive.arm_learned`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srlab.adaptive.engine import PatchRoutedMethod
from srlab.adaptive.method import register_adaptive
from srlab.errors import SrlabError
from srlab.models.arm import Subnet
from srlab.models.arm_lookup import ArmTable, choose_subnets, edge_scores, find_arm_table
from srlab.models.registry import spec_of


class _Bicubic(nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


def arm_routes(supernet: nn.Module) -> nn.ModuleList:
    """The supernet's routes, cheapest first: bicubic (PyTorch's, unclamped), then its subnets by width."""
    return nn.ModuleList([_Bicubic(supernet.scale), *(Subnet(supernet, w) for w in supernet.widths)])


class ArmRoutes(PatchRoutedMethod):
    """A supernet's routes as ARM's test runs them: bicubic, then the subnets from the narrowest to the full
    width, each SR patch clamped and rounded to 8-bit levels. Subclasses choose the routes (:meth:`route`)."""

    def __init__(self, supernet: nn.Module, *, knob: float) -> None:
        super().__init__(scale=supernet.scale, num_routes=len(supernet.widths) + 1, knob=knob)
        self.routes = arm_routes(supernet)

    def route_module(self, index: int) -> nn.Module:
        return self.routes[index]

    def route_names(self) -> tuple[str, ...]:
        return ("bicubic", *(f"width {w}" for w in self.routes[1].supernet.widths))

    def run(self, index: int, patches: torch.Tensor) -> torch.Tensor:
        return torch.round(self.routes[index](patches).clamp(0, 1) * 255.0) / 255.0


class ArmRouting(ArmRoutes):
    knob_name = "eta"
    # In units of the full network's cost: below 1e-3 every patch goes bicubic, above 1e3 to its best subnet.
    knob_range = (1e-3, 1e3)
    knob_sweep = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0, 100.0)

    def __init__(self, supernet: nn.Module, table: ArmTable, *, knob: float) -> None:
        super().__init__(supernet, knob=knob)
        self.table = table

    def route(self, patches: torch.Tensor) -> torch.Tensor:
        chosen = choose_subnets(self.table, edge_scores(patches), self.knob * float(self.table.cost[-1]))
        return torch.from_numpy(chosen).to(patches.device)


def check_supernet(model: nn.Module, method: str) -> None:
    """A one-line error unless ``model`` is an ARM supernet."""
    if getattr(model, "widths", None) is None:
        raise SrlabError(f"adaptive method {method} runs ARM supernets (arm_carn, arm_fsrcnn, arm_srresnet), "
                         f"not {type(model).__name__}")


@register_adaptive
def arm(model: nn.Module, *, checkpoint: Path | None = None, knob: float = 4.0) -> ArmRouting:
    """An ARM supernet (``arm_carn``, ``arm_fsrcnn``, ``arm_srresnet``) with the lookup table of its
    ``checkpoint``: the one an srlab checkpoint carries, else ``<stem>.hmap.json`` beside it (released ``.pth``)."""
    check_supernet(model, "arm")
    if checkpoint is None:
        raise SrlabError("adaptive method arm needs the supernet's lookup table: give --checkpoint FILE (an srlab "
                         "checkpoint carrying its table, or a released FILE.pth with FILE.hmap.json beside it)")
    table = find_arm_table(Path(checkpoint), subnets=len(model.widths) + 1, model=spec_of(model).name)
    return ArmRouting(model, table, knob=knob)
