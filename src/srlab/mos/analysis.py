"""The statistics of a MOS study: pure functions over :mod:`srlab.mos.records` and arrays.

Which ratings count
    Only real trials (``Trial.check is None``) enter the MOS and the Bradley-Terry scores; the attention
    checks only screen raters. A rater who answered one trial twice (a re-submission the app let through)
    counts once, with the later answer (:func:`latest_ratings`).

MOS and its 95% confidence interval (:func:`mean_ci95`, :func:`method_scores`, :func:`image_scores`)
    ``mos`` is the mean of the ratings (ITU-T P.800.1: the mean of the individual opinion scores). The
    half-width is Student's ``t(0.975, n-1) * s / sqrt(n)`` with the sample standard deviation ``s`` (n-1
    in its denominator), the interval ITU-T P.1401 gives for a MOS from few votes, and ``None`` when
    ``n < 2``.

    - Per (method, image): over the ratings, one per rater, independent observations as P.1401 assumes
      (a study made with ``--repeats K`` shows a trial K times: then over each rater's mean of their K).
    - Per method: over the **per-rater means** (each rater's mean of that method's images), the sample
      size being the number of raters (``raters``; ``n`` counts the ratings). One rater's ratings of one
      method are not independent (a lenient rater is lenient on every image), so an interval over all
      R x I ratings as if they were R x I independent votes (pooling a condition's votes, as P.1401's
      per-condition interval does) would be too narrow by up to sqrt(I); the per-rater means are
      independent across raters, and the interval then says how far the MOS would move with another panel
      of raters, which is what a comparison of methods needs. When every rater rated every image (the
      app's design) the mean of the per-rater means equals ``mos``.

Rater screening (:func:`screen_raters`)
    1. Attention checks (:func:`attention_failures`), first, since they are direct evidence:

       - ``repeat``: the trial shown twice. ACR/DCR: the rater fails when the mean absolute difference of
         their repeated scores exceeds ``REPEAT_MAX_MEAN_DIFF`` = 1 point (one category of drift is normal
         on a 5-point scale; two is not). Pair: the rater fails when they changed their choice on more than
         ``REPEAT_MAX_CHANGED`` = half of the repeats (chance is a half).
       - ``bad``: a deliberately degraded image. ACR/DCR: scored ``BAD_MIN_SCORE`` = 4 (good) or 5; pair:
         the degraded side chosen, which is the trial's ``other`` (``method`` is a real output), as
         ``srlab mos create`` makes these trials. The rater fails when
         more than ``BAD_MAX_FAILED`` = half of their bad checks failed (one slip in two is forgiven).

    2. ITU-R BT.500 outlier rejection on the remaining raters (ACR/DCR only; a paired choice is not a
       score): :func:`bt500_outliers`, ITU-R BT.500-13 (01/2012) Annex 2 section 2.3.1, section A1-2.3.1 of
       BT.500-14 (10/2019). For each presentation (here a real trial: method, image), over the N raters
       who rated it: the mean ``u``, the standard deviation ``S`` (N-1 in its denominator, as BT.500 defines
       it in section 2.2.1; Netflix's sureal divides by N), and the kurtosis
       ``beta2 = m4 / m2**2`` with the moments ``m_x = sum((u_i - u)**x) / N``. If ``2 <= beta2 <= 4`` the
       scores are taken as normal and the limit is ``2 S``, else ``sqrt(20) S``. Rater i gets ``P_i += 1``
       for a score ``>= u + limit`` and ``Q_i += 1`` for a score ``<= u - limit``. Rater i is rejected when
       ``(P_i + Q_i) / (J K R) > 0.05`` **and** ``|P_i - Q_i| / (P_i + Q_i) < 0.3``, J K R being the number
       of presentations (conditions x sequences x repetitions; here the presentations rater i rated, so a
       rater who stopped early is judged on what they rated). A presentation whose scores all agree
       (``S = 0``) has no outliers and counts no P or Q (the limits would otherwise count every rater).
       The procedure is run once, not repeated on the survivors, as BT.500 describes it.

Bradley-Terry scores for paired designs (:func:`bradley_terry`)
    The model: method i is preferred to method j with probability ``p_i / (p_i + p_j)``. The maximum
    likelihood strengths are found by Hunter's MM algorithm (Hunter 2004, "MM algorithms for generalized
    Bradley-Terry models", Ann. Statist. 32(1)): ``p_i <- W_i / sum_j N_ij / (p_i + p_j)``, W_i the wins of
    i and N_ij the comparisons of i and j. Scores are the log strengths ``theta_i = log p_i`` in the gauge
    ``mean(theta) = 0`` (a method at 0 is the panel's average; theta_i - theta_j is the log-odds of i
    preferred to j). The 95% interval is ``1.96 * sqrt(C_ii)``, C the Moore-Penrose inverse of the Fisher
    information ``I_ii = sum_j N_ij q_ij (1 - q_ij)``, ``I_ij = -N_ij q_ij (1 - q_ij)`` at the estimate
    (q_ij the model probability that i beats j): the inverse on the sum-to-zero subspace, which is the
    gauge. It treats the comparisons as independent (it does not widen for raters who disagree with each
    other).

    The maximum likelihood estimate exists only when the graph of wins is strongly connected (Ford 1957:
    every split of the methods into two groups has a win each way); a method that never wins would get
    ``theta = -inf``. Then, and only then, the counts are regularised: every pair of methods that was
    compared gets ``PRIOR_WINS`` = 0.5 virtual wins each way, and the result says ``"regularised": True``.
    Methods never compared with each other, even through others, have no common scale: a
    :class:`~srlab.errors.SrlabError`.

Correlations with objective metrics (:func:`correlations`)
    Pearson, Spearman and Kendall (tau-b) from ``scipy.stats``, with their two-sided p-values (Spearman's
    exact by enumeration for up to 8 methods, where scipy's t approximation is far off), over the
    methods that have both a MOS (or Bradley-Terry score) and the metric; ``None`` where fewer than 3
    methods or constant values leave a coefficient undefined. A lower-is-better metric (LPIPS) correlates
    negatively.
"""

from __future__ import annotations

import importlib
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from srlab.errors import SrlabError
from srlab.mos.records import DESIGNS, Rating

REPEAT_MAX_MEAN_DIFF = 1.0
REPEAT_MAX_CHANGED = 0.5
BAD_MIN_SCORE = 4
BAD_MAX_FAILED = 0.5
BT500_MAX_OUTSIDE = 0.05
BT500_MAX_ASYMMETRY = 0.3
PRIOR_WINS = 0.5
Z95 = NormalDist().inv_cdf(0.975)  # 1.95996...


def _scipy(module: str):
    """scipy (the ``mos`` extra's dependency), imported when first needed, or a one-line error naming the fix."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SrlabError("the MOS analysis needs scipy: pip install scipy (or pip install 'srlab[mos]')") from None


def check_design(design: str) -> None:
    if design not in DESIGNS:
        raise SrlabError(f"unknown study design {design!r}: expected one of {', '.join(DESIGNS)}")


def latest_ratings(ratings: Iterable[Rating]) -> list[Rating]:
    """One rating per (rater, trial): the latest by ``time`` (then by order given), in first-seen order."""
    latest: dict[tuple[str, str], Rating] = {}
    for rating in ratings:
        key = (rating.rater, rating.trial.id)
        if key not in latest or rating.time >= latest[key].time:
            latest[key] = rating
    return list(latest.values())


def mean_ci95(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, half-width of the 95% Student t interval); (None, None) for no values, (mean, None) for one."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return None, None
    mean = float(data.mean())
    if data.size < 2:
        return mean, None
    half = _scipy("scipy.stats").t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size)
    return mean, float(half)


@dataclass(frozen=True)
class Score:
    """The MOS of a method (``image`` None) or of one method's image, with its interval (see the module)."""

    method: str
    image: str | None
    mos: float | None
    ci95: float | None
    n: int  # ratings
    raters: int  # the interval's observations for a method (per-rater means)


def _score(rating: Rating) -> int:
    if rating.score is None:
        raise SrlabError(f"rating of rater {rating.rater!r} for trial {rating.trial.id!r} has no score "
                         "(a pair answer in a rated study?): check the study's design")
    return rating.score


def _scored(ratings: Iterable[Rating]) -> list[Rating]:
    """The ratings of real trials, each checked to carry a score."""
    real = [r for r in ratings if r.trial.check is None]
    for rating in real:
        _score(rating)
    return real


def _summary(method: str, image: str | None, per_rater: dict[str, list[int]]) -> Score:
    """MOS of all the ratings, interval over the per-rater means."""
    every = [s for values in per_rater.values() for s in values]
    _, ci95 = mean_ci95([float(np.mean(values)) for values in per_rater.values()])
    return Score(method, image, float(np.mean(every)) if every else None, ci95, len(every), len(per_rater))


def method_scores(ratings: Iterable[Rating], methods: Sequence[str]) -> list[Score]:
    """Per method (in the order of ``methods``): MOS of the ratings, CI over the per-rater means."""
    cells: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for rating in _scored(ratings):
        cells[rating.trial.method][rating.rater].append(rating.score)
    return [_summary(method, None, cells.get(method, {})) for method in methods]


def image_scores(ratings: Iterable[Rating]) -> list[Score]:
    """Per (method, image), sorted: MOS of the ratings, CI over the per-rater means (a rater's one rating, or
    the mean of their ratings of the study's repetitions of the trial)."""
    cells: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for rating in _scored(ratings):
        cells[(rating.trial.method, rating.trial.image)][rating.rater].append(rating.score)
    return [_summary(method, image, per_rater) for (method, image), per_rater in sorted(cells.items())]


# ---- rater screening -------------------------------------------------------------------------------


def attention_failures(ratings: Iterable[Rating], design: str) -> dict[str, str]:
    """Rater -> why they failed the attention checks (see the module), for the raters who did."""
    check_design(design)
    ratings = latest_ratings(ratings)
    answers = {(r.rater, r.trial.id): r for r in ratings}
    repeats: dict[str, list[float]] = defaultdict(list)  # rater -> disagreement of each repeat
    bad: dict[str, list[bool]] = defaultdict(list)  # rater -> failed, per bad check
    for rating in ratings:
        trial = rating.trial
        if trial.check == "repeat":
            original = answers.get((rating.rater, trial.repeats))
            if original is None:  # the original trial not answered (yet): nothing to compare
                continue
            if design == "pair":
                repeats[rating.rater].append(float(rating.winner != original.winner))
            else:
                repeats[rating.rater].append(abs(_score(rating) - _score(original)))
        elif trial.check == "bad":
            failed = rating.winner == trial.other if design == "pair" else _score(rating) >= BAD_MIN_SCORE
            bad[rating.rater].append(failed)
    reasons: dict[str, list[str]] = defaultdict(list)
    for rater, values in repeats.items():
        mean = sum(values) / len(values)
        if design == "pair" and mean > REPEAT_MAX_CHANGED:
            reasons[rater].append(f"changed the choice on {sum(values):.0f} of {len(values)} repeated trials")
        elif design != "pair" and mean > REPEAT_MAX_MEAN_DIFF:
            reasons[rater].append(f"repeated trials scored {mean:.2f} points apart on average "
                                  f"(limit {REPEAT_MAX_MEAN_DIFF:g})")
    for rater, failed in bad.items():
        if sum(failed) / len(failed) > BAD_MAX_FAILED:
            what = "chose the degraded image" if design == "pair" else f"scored the degraded image >= {BAD_MIN_SCORE}"
            reasons[rater].append(f"{what} in {sum(failed)} of {len(failed)} checks")
    return {rater: "attention check: " + "; ".join(parts) for rater, parts in reasons.items()}


@dataclass(frozen=True)
class Bt500:
    """BT.500 counts of each rater (rows of the score matrix): P (high outliers), Q (low), the number of
    presentations they rated, and whether they are rejected."""

    p: np.ndarray
    q: np.ndarray
    rated: np.ndarray
    rejected: np.ndarray


def bt500_outliers(scores: np.ndarray) -> Bt500:
    """ITU-R BT.500-13 Annex 2 section 2.3.1 (BT.500-14 A1-2.3.1) on ``scores`` (raters x presentations, NaN
    where a rater did not rate a presentation); see the module docstring for the formula."""
    scores = np.asarray(scores, dtype=np.float64)
    rated = ~np.isnan(scores)
    p = np.zeros(scores.shape[0], dtype=np.int64)
    q = np.zeros(scores.shape[0], dtype=np.int64)
    for column, mask in zip(scores.T, rated.T):
        values = column[mask]
        if values.size < 2:
            continue
        mean = values.mean()
        s = values.std(ddof=1)
        if s == 0:
            continue
        m2 = np.mean((values - mean) ** 2)
        beta2 = np.mean((values - mean) ** 4) / m2**2
        limit = (2.0 if 2.0 <= beta2 <= 4.0 else math.sqrt(20.0)) * s
        p[mask] += values >= mean + limit
        q[mask] += values <= mean - limit
    count = rated.sum(axis=1)
    outside = p + q
    # np.maximum(.., 1): a rater with no outliers (or no ratings) fails the first test, whatever the second.
    rejected = (outside / np.maximum(count, 1) > BT500_MAX_OUTSIDE) & (
        np.abs(p - q) / np.maximum(outside, 1) < BT500_MAX_ASYMMETRY)
    return Bt500(p, q, count, rejected)


def score_matrix(ratings: Iterable[Rating]) -> tuple[list[str], list[str], np.ndarray]:
    """(raters, trial ids, scores: raters x real trials, NaN where not rated), raters and trials sorted."""
    real = _scored(latest_ratings(ratings))
    raters = sorted({r.rater for r in real})
    trials = sorted({r.trial.id for r in real})
    row, col = {r: i for i, r in enumerate(raters)}, {t: j for j, t in enumerate(trials)}
    matrix = np.full((len(raters), len(trials)), np.nan)
    for rating in real:
        matrix[row[rating.rater], col[rating.trial.id]] = rating.score
    return raters, trials, matrix


@dataclass(frozen=True)
class RaterVerdict:
    id: str
    n: int  # the rater's answers, attention checks included
    kept: bool
    reason: str | None


def screen_raters(ratings: Iterable[Rating], design: str) -> list[RaterVerdict]:
    """Every rater (sorted) with the verdict of the attention checks, then of BT.500 (ACR/DCR)."""
    check_design(design)
    ratings = latest_ratings(ratings)
    answered: dict[str, int] = defaultdict(int)
    for rating in ratings:
        answered[rating.rater] += 1
    reasons = attention_failures(ratings, design)
    if design != "pair":
        survivors = [r for r in ratings if r.rater not in reasons]
        raters, _, matrix = score_matrix(survivors)
        if raters:
            verdict = bt500_outliers(matrix)
            for index in np.flatnonzero(verdict.rejected):
                p, q, rated = int(verdict.p[index]), int(verdict.q[index]), int(verdict.rated[index])
                reasons[raters[index]] = (
                    f"ITU-R BT.500 outlier: P={p}, Q={q} of {rated} presentations "
                    f"((P+Q)/{rated} = {(p + q) / rated:.3f} > {BT500_MAX_OUTSIDE}, "
                    f"|P-Q|/(P+Q) = {abs(p - q) / (p + q):.2f} < {BT500_MAX_ASYMMETRY})"
                )
    return [RaterVerdict(rater, count, rater not in reasons, reasons.get(rater))
            for rater, count in sorted(answered.items())]


# ---- Bradley-Terry ---------------------------------------------------------------------------------


def win_matrix(ratings: Iterable[Rating], methods: Sequence[str]) -> np.ndarray:
    """``W[i, j]``: how often ``methods[i]`` was chosen over ``methods[j]`` in the real pair trials."""
    index = {m: i for i, m in enumerate(methods)}
    wins = np.zeros((len(methods), len(methods)))
    for rating in ratings:
        trial = rating.trial
        if trial.check is not None:
            continue
        if trial.other is None or rating.winner not in (trial.method, trial.other):
            raise SrlabError(f"rating of rater {rating.rater!r} for trial {trial.id!r} does not choose one of its "
                             "two methods (a score in a pair study?): check the study's design")
        loser = trial.other if rating.winner == trial.method else trial.method
        wins[index[rating.winner], index[loser]] += 1
    return wins


@dataclass(frozen=True)
class BradleyTerry:
    scores: np.ndarray  # log strengths, mean 0
    ci95: np.ndarray  # half-widths (1.96 standard errors)
    regularised: bool  # PRIOR_WINS were added (the plain estimate does not exist)
    iterations: int


def _components(adjacency: np.ndarray, connection: str) -> tuple[int, np.ndarray]:
    sparse = _scipy("scipy.sparse")
    return _scipy("scipy.sparse.csgraph").connected_components(
        sparse.csr_matrix(adjacency > 0), directed=True, connection=connection)


def bradley_terry(wins: np.ndarray, names: Sequence[str] | None = None, *, tol: float = 1e-10,
                  max_iter: int = 100_000) -> BradleyTerry:
    """Maximum likelihood Bradley-Terry log strengths from the win matrix ``W[i, j]`` (i chosen over j), by
    Hunter's MM algorithm, with Fisher-information intervals; see the module docstring. ``names`` name the
    methods in the error for a comparison graph in pieces."""
    wins = np.asarray(wins, dtype=np.float64)
    size = wins.shape[0]
    names = list(names) if names is not None else [str(i) for i in range(size)]
    games = wins + wins.T
    count, labels = _components(games, "weak")
    if count > 1:
        groups = [", ".join(n for n, label in zip(names, labels) if label == k) for k in range(count)]
        raise SrlabError("Bradley-Terry needs every method compared with the others, directly or through others; "
                         f"these groups were never compared with each other: {' | '.join(groups)}")
    regularised = _components(wins, "strong")[0] > 1
    if regularised:
        wins = wins + PRIOR_WINS * (games > 0)
        games = wins + wins.T
    won = wins.sum(axis=1)
    theta = np.zeros(size)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        strength = np.exp(theta)
        denominator = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        updated = np.log(won / denominator)
        updated -= updated.mean()
        change = np.max(np.abs(updated - theta))
        theta = updated
        if change < tol:
            break
    return BradleyTerry(theta, Z95 * np.sqrt(np.diag(_covariance(theta, games))), regularised, iterations)


def _covariance(theta: np.ndarray, games: np.ndarray) -> np.ndarray:
    """The inverse Fisher information of the log strengths on the sum-to-zero subspace."""
    q = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # q[i, j]: P(i beats j)
    weight = games * q * (1 - q)
    information = np.diag(weight.sum(axis=1)) - weight
    return np.linalg.pinv(information)


def bradley_terry_log_likelihood(theta: np.ndarray, wins: np.ndarray) -> float:
    """``sum_ij W_ij log(p_i / (p_i + p_j))`` with ``p = exp(theta)``."""
    theta = np.asarray(theta, dtype=np.float64)
    difference = theta[:, None] - theta[None, :]
    return float(np.sum(wins * -np.logaddexp(0.0, -difference)))


# ---- correlations ----------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# Up to this many methods Spearman's p-value is exact, from all n! pairings (40320 for 8); beyond, scipy's
# t approximation, which for 3 methods in the same order says p = 0 where the truth is 1/3.
EXACT_SPEARMAN_MAX = 8


def spearman_exact_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p-value of Spearman's rho under the permutation null: the share of the n! pairings of the
    ranks whose |rho| reaches the observed one (ties keep their average ranks)."""
    stats = _scipy("scipy.stats")
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float(rx @ rx) * float(ry @ ry))
    observed = abs(float(rx @ ry)) / scale
    pairings = np.array(list(itertools.permutations(ry)))
    every = np.abs(pairings @ rx) / scale
    return float(np.mean(every >= observed - 1e-12))


def correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float | None]:
    """Pearson, Spearman and Kendall tau-b of paired values, with two-sided p-values (scipy.stats: Pearson's
    from its exact distribution under normality, Kendall's exact for small samples without ties; Spearman's
    exact by :func:`spearman_exact_p` up to ``EXACT_SPEARMAN_MAX`` pairs); ``None`` for fewer than 3 pairs or
    a constant series."""
    keys = ("pearson", "pearson_p", "spearman", "spearman_p", "kendall", "kendall_p")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return dict.fromkeys(keys)
    stats = _scipy("scipy.stats")
    pearson, spearman, kendall = stats.pearsonr(x, y), stats.spearmanr(x, y), stats.kendalltau(x, y)
    spearman_p = spearman_exact_p(x, y) if x.size <= EXACT_SPEARMAN_MAX else spearman.pvalue
    values = (pearson.statistic, pearson.pvalue, spearman.statistic, spearman_p, kendall.statistic, kendall.pvalue)
    return {key: _finite(value) for key, value in zip(keys, values)}
