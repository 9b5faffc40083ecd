"""The router CNN of srlab's content-adaptive methods: what each cheaper route of a network would change on an
LR patch, and the full route's own error, predicted from the patch (``rdsr_adaptive``'s routers,
:mod:`srlab.adaptive.rdsr`; ``arm_learned``'s, :mod:`srlab.adaptive.arm_learned`)."""

from __future__ import annotations

import torch
from torch import nn

ROUTER_EPS = 1e-3  # added to the predicted squared differences before the log (levels squared)
CONTRAST_EPS = 1e-6  # added to a patch's mean square before the root: a flat patch's contrast is 1e-3


class ExitRouter(nn.Module):
    """Three stride-2 3x3 convolutions on an LR patch (its mean removed), mean and max pooled, and a
    linear layer: ``num_routes`` outputs, the log of (each cheaper route's mean squared Y difference to the
    full path + ``ROUTER_EPS``) and the log of the full path's mean squared Y error (8-bit levels).

    ``contrast=True``: the convolutions see the patch divided by its contrast (root mean square after the
    mean is removed), the linear layer also gets the log contrast, and twice the log contrast is added to
    every output: where the network is near linear the differences and errors scale with the contrast
    squared, so the layers learn what they cannot get from the contrast alone (figures: the README's
    "Content-adaptive compute" and ``bench/rdsr_adaptive_oracle.py``).

    ``features`` > 0: the input also holds that many feature channels after the 3 LR ones (the network's
    first block's output, for the cascade's second router), which the first convolution sees as they are."""

    def __init__(self, *, num_routes: int, width: int, contrast: bool = False, features: int = 0) -> None:
        super().__init__()
        self.contrast = contrast
        self.features = features
        self.body = nn.Sequential(
            nn.Conv2d(3 + features, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(4 * width + int(contrast), num_routes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x[:, :3].mean(dim=(1, 2, 3), keepdim=True)
        # Per-channel shifts (and scales) broadcast over x keep its memory order: the feature router's
        # 35-channel first convolution runs 1.9x faster on channels-last input than on the default order.
        x = x - self._lr_only(mean, 0.0)
        if not self.contrast:
            features = self.body(x)
            return self.head(torch.cat((features.mean(dim=(2, 3)), features.amax(dim=(2, 3))), dim=1))
        contrast = x[:, :3].square().mean(dim=(1, 2, 3), keepdim=True).add(CONTRAST_EPS).sqrt()
        features = self.body(x / self._lr_only(contrast, 1.0))
        log_contrast = contrast.flatten(1).log()
        pooled = torch.cat((features.mean(dim=(2, 3)), features.amax(dim=(2, 3)), log_contrast), dim=1)
        return self.head(pooled) + 2 * log_contrast

    def _lr_only(self, value: torch.Tensor, features_value: float) -> torch.Tensor:
        """(P, 1, 1, 1) per-patch ``value`` for the 3 LR channels, ``features_value`` for the feature channels."""
        if not self.features:
            return value
        return torch.cat((value.expand(-1, 3, 1, 1), value.new_full((len(value), self.features, 1, 1), features_value)),
                         dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, 3 + features, h, w) LR patches (and their features) -> (P, routes) predicted squared
        difference of each route's output to the full path's (0 for the full path itself) and (P,) the full
        path's predicted squared error."""
        out = self(x).double()
        diffs = (out[:, :-1].exp() - ROUTER_EPS).clamp(min=0)
        return torch.cat((diffs, diffs.new_zeros(len(x), 1)), dim=1), out[:, -1].exp()
