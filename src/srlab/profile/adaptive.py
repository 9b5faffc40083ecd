"""What a content-adaptive model spends on one image: the MACs that actually ran, the same weights'
full-path MACs, and the routing histogram (the static profile's MACs are the full path's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from srlab.adaptive.method import AdaptiveMethod


@dataclass(frozen=True)
class AdaptiveProfile:
    method: str
    knob_name: str | None
    knob: float | None
    image: str
    lr_size: tuple[int, int]  # (H, W)
    macs_spent: int
    macs_full: int
    unit: str  # what is routed: patch, pixel, window, position
    routes: dict[str, int]  # the routing histogram

    def table(self) -> str:
        knob = "" if self.knob_name is None else f", {self.knob_name} = {self.knob:g}"
        total = max(sum(self.routes.values()), 1)
        lines = [
            f"adaptive         {self.method}{knob}, on {self.image} ({self.lr_size[0]}x{self.lr_size[1]} LR)",
            f"MACs spent       {self.macs_spent / 1e9:.3f} G of the full path's {self.macs_full / 1e9:.3f} G "
            f"({self.macs_spent / max(self.macs_full, 1):.1%})",
            f"{'routing':<17}" + ", ".join(
                f"{name} {count} ({count / total:.1%})" for name, count in self.routes.items()
            ) + f" of {total} {self.unit}{'es' if self.unit.endswith('ch') else 's'}",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict:
        data = asdict(self)
        data["lr_size"] = list(self.lr_size)
        return data


def profile_adaptive(method: AdaptiveMethod, lr: torch.Tensor, *, image: str) -> AdaptiveProfile:
    """Run ``method`` on the (C, H, W) LR image ``lr`` (whole image) and report what it spent."""
    device = next(method.parameters()).device
    with torch.no_grad():
        _, stats = method.upscale(lr.unsqueeze(0).to(device), whole_image=True)
    return AdaptiveProfile(
        method=method.method_name, knob_name=method.knob_name, knob=method.knob, image=image,
        lr_size=(lr.shape[-2], lr.shape[-1]), macs_spent=stats.macs_spent, macs_full=stats.macs_full,
        unit=stats.unit, routes=stats.histogram(),
    )
