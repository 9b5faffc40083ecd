"""The MOS study statistics against values computed by hand (or by an independent maximisation)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy import optimize, stats

from srlab.errors import SrlabError
from srlab.mos.analysis import (
    PRIOR_WINS, Z95, attention_failures, bradley_terry, bradley_terry_log_likelihood, bt500_outliers, correlations,
    image_scores, latest_ratings, mean_ci95, method_scores, screen_raters, spearman_exact_p, win_matrix,
)
from srlab.mos.records import Rating, Trial

# Student t's 97.5% quantile for 2 degrees of freedom, in closed form: its CDF is 1/2 + t / (2 sqrt(2 + t^2)),
# so t / sqrt(2 + t^2) = 0.95 and t^2 = 2 * 0.95^2 / (1 - 0.95^2) = 18.5128...; t = 4.3026527 (tables: 4.303).
T_975_2DOF = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))


def rate(rater: str, trial: Trial, score: int, time: float = 0.0) -> Rating:
    return Rating(rater=rater, trial=trial, score=score, time=time)


def test_ci_of_three_scores_by_hand():
    # [3, 4, 5]: mean 4, s = sqrt((1 + 0 + 1) / 2) = 1, half-width t(0.975, 2) * 1 / sqrt(3)
    # = 4.30265272975 / 1.73205080757 = 2.48413771175
    mean, half = mean_ci95([3, 4, 5])
    assert mean == 4.0
    assert half == pytest.approx(2.48413771175, abs=1e-10)
    assert stats.t.ppf(0.975, 2) == pytest.approx(T_975_2DOF, abs=1e-12)
    assert mean_ci95([4]) == (4.0, None)
    assert mean_ci95([]) == (None, None)


def test_method_ci_is_over_per_rater_means_and_image_ci_over_ratings():
    x, y = Trial("t1", "x", "A"), Trial("t2", "y", "A")
    ratings = [rate("r1", x, 3), rate("r1", y, 5), rate("r2", x, 2), rate("r2", y, 2), rate("r3", x, 4),
               rate("r3", y, 4)]
    (score,) = method_scores(ratings, ["A"])
    # MOS: (3 + 5 + 2 + 2 + 4 + 4) / 6 = 10/3. Per-rater means 4, 2, 4: mean 10/3, deviations 2/3, -4/3, 2/3,
    # s = sqrt((4/9 + 16/9 + 4/9) / 2) = sqrt(4/3); half-width t(0.975, 2) * sqrt(4/3) / sqrt(3) = t * 2/3.
    assert score.mos == pytest.approx(10 / 3)
    assert score.ci95 == pytest.approx(T_975_2DOF * 2 / 3, abs=1e-12)
    assert (score.n, score.raters) == (6, 3)
    per_image = {s.image: s for s in image_scores(ratings)}
    # image x: [3, 2, 4]: mean 3, s = 1, half-width t / sqrt(3)
    assert per_image["x"].mos == 3.0
    assert per_image["x"].ci95 == pytest.approx(T_975_2DOF / math.sqrt(3), abs=1e-12)
    assert per_image["x"].n == 3


def test_repeated_presentations_average_per_rater_first():
    # A study made with --repeats 2: trials t1 and t1b show the same image of A. Rater means (2 + 4) / 2 = 3
    # and (4 + 4) / 2 = 4: interval t(0.975, 1) * s / sqrt(2) with s = sqrt(0.5), i.e. 12.7062 * 0.5; MOS 14/4.
    first, again = Trial("t1", "x", "A"), Trial("t1b", "x", "A")
    ratings = [rate("r1", first, 2), rate("r1", again, 4), rate("r2", first, 4), rate("r2", again, 4)]
    (score,) = image_scores(ratings)
    assert (score.mos, score.n, score.raters) == (3.5, 4, 2)
    assert score.ci95 == pytest.approx(stats.t.ppf(0.975, 1) * 0.5)
    assert stats.t.ppf(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475))  # Cauchy: t(p, 1) = tan(pi (p - 1/2))


def test_method_without_ratings_has_no_mos():
    (score,) = method_scores([], ["A"])
    assert (score.mos, score.ci95, score.n, score.raters) == (None, None, 0, 0)


def _panel() -> np.ndarray:
    """8 raters x 4 presentations. Rater 7 (last row) is the outlier, high on presentations 0 and 1, low on
    2 and 3. Presentation 0, [2, 2, 3, 3, 2, 3, 2, 5]: mean 22/8 = 2.75; deviations -0.75 (x4), 0.25 (x3),
    2.25; sum of squares 4 * 0.5625 + 3 * 0.0625 + 5.0625 = 7.5, so S = sqrt(7.5 / 7) = 1.0351 and
    m2 = 7.5 / 8 = 0.9375; sum of 4th powers 4 * 0.31640625 + 3 * 0.00390625 + 25.62890625 = 26.90625,
    m4 = 3.36328125; beta2 = m4 / m2^2 = 3.8267, inside [2, 4]: normal, limit 2 S = 2.0702. 5 >= 2.75 +
    2.0702 = 4.8202: P += 1 for rater 7; nobody is <= 2.75 - 2.0702 = 0.6798. Presentation 2 is its mirror
    (6 - score): Q += 1 for rater 7. So rater 7: P = 2, Q = 2 of 4 presentations: (P + Q) / 4 = 1 > 0.05
    and |P - Q| / (P + Q) = 0 < 0.3: rejected. Every other rater: P = Q = 0, kept."""
    high = [2, 2, 3, 3, 2, 3, 2, 5]
    low = [6 - s for s in high]
    return np.array([high, high, low, low], dtype=np.float64).T


def test_bt500_rejects_an_inconsistent_outlier():
    verdict = bt500_outliers(_panel())
    assert verdict.p.tolist() == [0] * 7 + [2]
    assert verdict.q.tolist() == [0] * 7 + [2]
    assert verdict.rated.tolist() == [4] * 8
    assert verdict.rejected.tolist() == [False] * 7 + [True]


def test_bt500_keeps_a_consistently_lenient_rater():
    # Rater 7 high on all 4 presentations: P = 4, Q = 0, |P - Q| / (P + Q) = 1 >= 0.3: a bias, not noise.
    high = [2, 2, 3, 3, 2, 3, 2, 5]
    verdict = bt500_outliers(np.array([high] * 4, dtype=np.float64).T)
    assert (verdict.p[7], verdict.q[7]) == (4, 0)
    assert not verdict.rejected.any()


def test_bt500_uses_sqrt20_when_the_scores_are_not_normal():
    # [3, 3, 3, 3, 3, 5]: mean 10/3, deviations -1/3 (x5), 5/3; m2 = (5/9 + 25/9) / 6 = 5/9,
    # m4 = (5/81 + 625/81) / 6 = 35/27, beta2 = (35/27) / (25/81) = 4.2 > 4: limit sqrt(20) S with
    # S = sqrt((10/3) / 5) = 0.8165, i.e. 3.651; 5 < 3.333 + 3.651. (With 2 S = 1.633, 5 >= 4.966 would count.)
    scores = np.array([[3.0], [3.0], [3.0], [3.0], [3.0], [5.0]])
    verdict = bt500_outliers(scores)
    assert verdict.p.sum() == 0 and verdict.q.sum() == 0


def test_bt500_skips_unanimous_and_unrated_presentations():
    scores = np.array([[3.0, 4.0], [3.0, np.nan], [3.0, 2.0]])
    verdict = bt500_outliers(scores)
    assert verdict.p.sum() == verdict.q.sum() == 0
    assert verdict.rated.tolist() == [2, 1, 2]


def _study_ratings(outlier_scores: list[int]) -> tuple[list[Trial], list[Rating]]:
    trials = [Trial(f"t{j}", f"img{j}", "A") for j in range(4)]
    panel = _panel()
    panel[7] = outlier_scores
    ratings = [rate(f"r{i}", trial, int(panel[i, j])) for i in range(8) for j, trial in enumerate(trials)]
    return trials, ratings


def test_screen_raters_names_the_bt500_outlier():
    trials, ratings = _study_ratings([5, 5, 1, 1])
    verdicts = screen_raters(ratings, "acr")
    assert [v.kept for v in verdicts] == [True] * 7 + [False]
    assert verdicts[7].id == "r7"
    assert verdicts[7].reason.startswith("ITU-R BT.500 outlier: P=2, Q=2 of 4 presentations")
    assert verdicts[0].reason is None and verdicts[0].n == 4


def test_attention_checks_exclude_with_the_reason():
    real = Trial("t1", "img", "A")
    repeat = Trial("t1r", "img", "A", check="repeat", repeats="t1")
    bad = Trial("b1", "img", "bad", check="bad")
    ratings = [
        rate("steady", real, 4), rate("steady", repeat, 3), rate("steady", bad, 1),  # 1 point apart: fine
        rate("drifting", real, 5), rate("drifting", repeat, 2), rate("drifting", bad, 1),  # 3 points apart
        rate("careless", real, 4), rate("careless", repeat, 4), rate("careless", bad, 4),  # bad scored 4
    ]
    failures = attention_failures(ratings, "acr")
    assert set(failures) == {"drifting", "careless"}
    assert failures["drifting"] == "attention check: repeated trials scored 3.00 points apart on average (limit 1)"
    assert failures["careless"] == "attention check: scored the degraded image >= 4 in 1 of 1 checks"
    verdicts = {v.id: v for v in screen_raters(ratings, "acr")}
    assert not verdicts["drifting"].kept and verdicts["drifting"].reason == failures["drifting"]
    assert verdicts["steady"].kept


def test_pair_attention_checks():
    real = Trial("p1", "img", "A", other="B")
    repeat = Trial("p1r", "img", "A", other="B", check="repeat", repeats="p1")
    bad = Trial("pb", "img", "A", other="_bad", check="bad")  # ``other`` is the degraded side (srlab mos create)
    ratings = [
        Rating("good", real, winner="A"), Rating("good", repeat, winner="A"), Rating("good", bad, winner="A"),
        Rating("flip", real, winner="A"), Rating("flip", repeat, winner="B"), Rating("flip", bad, winner="A"),
        Rating("blind", real, winner="B"), Rating("blind", repeat, winner="B"), Rating("blind", bad, winner="_bad"),
    ]
    failures = attention_failures(ratings, "pair")
    assert failures == {
        "flip": "attention check: changed the choice on 1 of 1 repeated trials",
        "blind": "attention check: chose the degraded image in 1 of 1 checks",
    }


def test_a_resubmitted_answer_counts_once_the_latest():
    trial = Trial("t1", "img", "A")
    ratings = [rate("r1", trial, 5, time=2.0), rate("r1", trial, 1, time=1.0), rate("r2", trial, 3, time=1.5)]
    assert [(r.rater, r.score) for r in latest_ratings(ratings)] == [("r1", 5), ("r2", 3)]
    assert [v.n for v in screen_raters(ratings, "acr")] == [1, 1]


def test_bradley_terry_on_data_the_model_fits_exactly():
    # Strengths p = (4, 2, 1): P(A > B) = 4/6 = 2/3, P(B > C) = 2/3, P(A > C) = 4/5. Counts in exactly those
    # proportions (A-B 2:1, B-C 2:1, A-C 4:1) satisfy the likelihood equations W_i = sum_j N_ij p_i / (p_i + p_j)
    # (A: 3 = 3 * 2/3 + 5 * 4/5), so the estimate is log(4, 2, 1) - mean = log(2) * (1, 0, -1).
    wins = np.array([[0, 2, 4], [1, 0, 2], [1, 1, 0]], dtype=np.float64)
    result = bradley_terry(wins)
    assert result.scores == pytest.approx(math.log(2) * np.array([1.0, 0.0, -1.0]), abs=1e-9)
    assert not result.regularised


def test_bradley_terry_interval_of_two_methods_by_hand():
    # A beats B 3 times of 4: theta_A - theta_B = log 3, gauge -> theta_A = log(3) / 2. Fisher information of the
    # difference N q (1 - q) = 4 * 3/4 * 1/4 = 3/4, so var(theta_A - theta_B) = 4/3 and var(theta_A) = 1/3.
    result = bradley_terry(np.array([[0.0, 3.0], [1.0, 0.0]]))
    assert result.scores == pytest.approx([math.log(3) / 2, -math.log(3) / 2], abs=1e-9)
    assert result.ci95 == pytest.approx([Z95 / math.sqrt(3)] * 2, abs=1e-9)


def _scipy_maximum(wins: np.ndarray) -> np.ndarray:
    """An independent estimate: the log-likelihood maximised by BFGS over theta[1:], theta[0] = 0, then centred."""
    def negative(free: np.ndarray) -> float:
        theta = np.concatenate([[0.0], free])
        difference = theta[:, None] - theta[None, :]
        return float(np.sum(wins * np.log1p(np.exp(-difference))))

    free = optimize.minimize(negative, np.zeros(len(wins) - 1), method="BFGS", options={"gtol": 1e-10}).x
    theta = np.concatenate([[0.0], free])
    return theta - theta.mean()


def test_bradley_terry_matches_a_direct_maximisation():
    wins = np.array([[0, 7, 3, 9], [4, 0, 6, 5], [8, 5, 0, 2], [1, 6, 9, 0]], dtype=np.float64)
    result = bradley_terry(wins)
    assert result.scores == pytest.approx(_scipy_maximum(wins), abs=1e-5)
    assert result.scores.sum() == pytest.approx(0.0, abs=1e-12)
    assert bradley_terry_log_likelihood(result.scores, wins) >= bradley_terry_log_likelihood(_scipy_maximum(wins), wins)


def test_bradley_terry_regularises_a_method_that_never_wins():
    # C loses all its 6 comparisons: no finite estimate. Each compared pair gets PRIOR_WINS virtual wins each way,
    # and the result is the maximum of the likelihood of those counts.
    wins = np.array([[0, 3, 3], [2, 0, 3], [0, 0, 0]], dtype=np.float64)
    result = bradley_terry(wins, ["A", "B", "C"])
    assert result.regularised
    assert np.all(np.isfinite(result.scores)) and np.all(np.isfinite(result.ci95))
    assert result.scores.argmin() == 2
    augmented = wins + PRIOR_WINS * ((wins + wins.T) > 0)
    assert result.scores == pytest.approx(_scipy_maximum(augmented), abs=1e-5)


def test_bradley_terry_refuses_methods_never_compared():
    wins = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 2], [0, 0, 1, 0]], dtype=np.float64)
    with pytest.raises(SrlabError, match=r"never compared with each other: A, B \| C, D"):
        bradley_terry(wins, ["A", "B", "C", "D"])


def test_win_matrix_counts_real_trials_only():
    t = Trial("p1", "img", "A", other="B")
    check = Trial("p2", "img", "A", other="B", check="repeat", repeats="p1")
    wins = win_matrix([Rating("r", t, winner="B"), Rating("r", check, winner="A")], ["A", "B"])
    assert wins.tolist() == [[0, 0], [1, 0]]
    with pytest.raises(SrlabError, match="does not choose one of its two methods"):
        win_matrix([Rating("r", t, score=3)], ["A", "B"])


def test_correlations_by_hand_and_against_scipy():
    # x = 1..4, y = (1, 3, 2, 4): deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5); products sum
    # 2.25 - .25 - .25 + 2.25 = 4 over sqrt(5 * 5): Pearson 0.8; the data are ranks, so Spearman 0.8 too;
    # Kendall: 5 concordant, 1 discordant pair of 6: (5 - 1) / 6 = 2/3.
    result = correlations([1, 2, 3, 4], [1, 3, 2, 4])
    assert result["pearson"] == pytest.approx(0.8)
    assert result["spearman"] == pytest.approx(0.8)
    assert result["kendall"] == pytest.approx(2 / 3)
    x, y = [31.2, 32.5, 30.1, 33.0, 29.4], [3.1, 3.9, 2.2, 4.4, 2.5]
    result = correlations(x, y)
    assert result["pearson"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert result["pearson_p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert result["kendall_p"] == pytest.approx(stats.kendalltau(x, y).pvalue)


def test_spearman_p_is_exact_for_few_methods():
    # 3 methods in the same order: of the 3! = 6 pairings of the ranks, rho is 1, 0.5, 0.5, -0.5, -0.5, -1;
    # |rho| >= 1 in 2 of 6: p = 1/3 (scipy's t approximation says 0).
    assert correlations([1, 2, 3], [10, 20, 30])["spearman_p"] == pytest.approx(1 / 3)
    # 5 methods, one adjacent swap: rho = 1 - 6 * 2 / (5 * 24) = 0.9; 10 of the 120 pairings reach |rho| >= 0.9
    # (identity and the 4 adjacent swaps, and their 5 mirror images): p = 1/12.
    assert correlations([1, 2, 3, 4, 5], [2, 1, 3, 4, 5])["spearman_p"] == pytest.approx(1 / 12)
    assert spearman_exact_p([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(
        stats.permutation_test(([1, 2, 2, 3], [1, 2, 3, 4]), lambda a, b: stats.spearmanr(a, b).statistic,
                               permutation_type="pairings", n_resamples=np.inf).pvalue)


def test_correlations_undefined_are_none():
    assert correlations([1, 2], [2, 1])["pearson"] is None
    assert correlations([1, 2, 3], [2, 2, 2])["spearman"] is None


def test_without_scipy_the_error_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import scipy.stats now raises ImportError
    with pytest.raises(SrlabError, match=r"needs scipy: pip install scipy \(or pip install 'srlab\[mos\]'\)"):
        mean_ci95([3, 4, 5])


def test_unknown_design_is_refused():
    with pytest.raises(SrlabError, match="unknown study design 'abx'"):
        screen_raters([], "abx")
