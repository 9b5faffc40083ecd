"""The plain records that the MOS app's storage hands to the analysis (:mod:`srlab.mos.analysis`).

The app's database (SQLAlchemy) and the report never share table classes: storage reads its rows into
these frozen records, and every analysis function takes records, so the analysis is tested on
hand-written records without a database.
"""

from __future__ import annotations

from dataclasses import dataclass

# Designs of a study (study.json's "design"): ACR rates one image 1-5 with no reference, DCR rates one
# image 1-5 against the shown reference, pair chooses the better of two methods' images.
DESIGNS = ("acr", "dcr", "pair")
# Hidden attention checks: a trial shown twice (its rating should agree), and a deliberately degraded
# image (should be rated low, or lose its pair).
CHECK_KINDS = ("repeat", "bad")


@dataclass(frozen=True)
class Trial:
    """One thing a rater is asked: rate ``method``'s ``image`` (acr/dcr), or choose between the images of
    methods ``method`` and ``other`` (pair). ``check`` is None for a real trial, else one of CHECK_KINDS;
    ``repeats`` names the trial a repeat check repeats. In a pair trial with ``check == "bad"``, ``other``
    is the deliberately degraded side (choosing it fails the check)."""

    id: str
    image: str
    method: str
    other: str | None = None
    check: str | None = None
    repeats: str | None = None


@dataclass(frozen=True)
class Rating:
    """One acknowledged answer of one rater: ``score`` 1-5 for acr/dcr trials, ``winner`` (a method
    name, ``trial.method`` or ``trial.other``) for pair trials. ``time`` is seconds since the epoch."""

    rater: str
    trial: Trial
    score: int | None = None
    winner: str | None = None
    time: float = 0.0
