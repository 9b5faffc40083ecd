"""MACs of a method's routes on a given input size, counted once per (method, route, size).

Counting traces the route on the ``meta`` device (:func:`srlab.models.complexity.count_macs`), 30-100 ms
per call for a CARN-sized network: too slow to repeat on every inference. The count depends only on the
route's architecture and the input size, neither of which changes on a built method (the knob changes
which route a patch takes, not what a route costs), so it is kept per method for as long as the method
lives.
"""

from __future__ import annotations

import weakref

from srlab.adaptive.method import AdaptiveMethod

_COUNTS: weakref.WeakKeyDictionary[AdaptiveMethod, dict[tuple[int, int, int], int]] = weakref.WeakKeyDictionary()


def route_macs(method: AdaptiveMethod, index: int, lr_hw: tuple[int, int]) -> int:
    """``method.route_macs(index, lr_hw)`` (index -1: ``method.router_macs(lr_hw)``, what deciding the
    route of one patch costs), counted on the first call for that route and size only."""
    counts = _COUNTS.setdefault(method, {})
    key = (index, *lr_hw)
    if key not in counts:
        hw = tuple(lr_hw)
        counts[key] = method.router_macs(hw) if index < 0 else method.route_macs(index, hw)
    return counts[key]
