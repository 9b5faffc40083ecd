"""MACs of a method's routes and of its full path on a given input size, counted once per method and size.

Counting traces a network on the ``meta`` device (:func:`srlab.models.complexity.count_macs`), 30-500 ms
per call for a CARN- or CAMixerSR-sized network: too slow to repeat on every inference (and it would be
timed with it). The count depends only on the architecture and the input size, neither of which changes
on a built method (the knob changes which route a unit takes, not what a route costs), so it is kept per
method for as long as the method lives.
"""

from __future__ import annotations

import weakref

from collections.abc import Callable, Hashable

from srlab.adaptive.method import AdaptiveMethod
from srlab.models.complexity import count_macs

_COUNTS: weakref.WeakKeyDictionary[AdaptiveMethod, dict[Hashable, int]] = weakref.WeakKeyDictionary()


def _once(method: AdaptiveMethod, key: Hashable, count: Callable[[], int]) -> int:
    counts = _COUNTS.setdefault(method, {})
    if key not in counts:
        counts[key] = count()
    return counts[key]


def route_macs(method: AdaptiveMethod, index: int, lr_hw: tuple[int, int]) -> int:
    """``method.route_macs(index, lr_hw)`` (index -1: ``method.router_macs(lr_hw)``, what deciding the
    route of one patch costs), counted on the first call for that route and size only."""
    hw = tuple(lr_hw)
    if index < 0:  # keyed by the knob too: a router may run at some knobs only (rdsr_adaptive's not at 0)
        return _once(method, (index, hw, method.knob), lambda: method.router_macs(hw))
    return _once(method, (index, hw), lambda: method.route_macs(index, hw))


def full_path_macs(method: AdaptiveMethod, lr_hw: tuple[int, int]) -> int:
    """MACs of ``method.full_path()`` on one image of ``lr_hw``, counted on the first call for that size only."""
    hw = tuple(lr_hw)
    return _once(method, ("full", hw), lambda: count_macs(method.full_path(), hw))
