"""Classification and generation metrics, in NumPy (no TensorFlow): every figure we report.

Exact primality is the ground truth throughout: `y_true` always comes from `primes.is_prime`.
"""

from __future__ import annotations

import numpy as np

from optimus import limits, primes
from optimus.primes.bins import magnitude_bins
from optimus.primes.density import odd_prime_density_binned
from optimus.validate import exact_int_array, require_int


def confusion(y_true, y_pred) -> dict:
    """Counts of true/false positives/negatives ("positive" = prime)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    return {
        "tp": int(np.sum(t & p)),
        "fp": int(np.sum(~t & p)),
        "fn": int(np.sum(t & ~p)),
        "tn": int(np.sum(~t & ~p)),
    }


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half); NaN for one class."""
    t = np.asarray(y_true, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    uniq, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


ROC_MAX_POINTS = 2_000  # vertices kept for a chart; 100,000 distinct scores would be 100,000 points


def roc_curve(y_true, score, max_points: int = ROC_MAX_POINTS) -> dict:
    """The ROC curve through every distinct score, from (0, 0) to (1, 1).

    One vertex per distinct score s (predict prime when score >= s), joined by straight lines: a
    group of tied scores moves both rates at once, so it is a diagonal segment (a constant
    classifier is the chance diagonal, area 0.5, as `roc_auc` counts ties half), never a step.
    The first vertex, (0, 0), has threshold None (nothing predicted prime). Vertices on a straight
    run (collinear with their neighbours) are dropped, which changes nothing drawn; beyond
    `max_points` vertices the rest are thinned evenly (end points kept). With one class only,
    the rates are undefined: empty lists.
    """
    t = np.asarray(y_true, dtype=bool).reshape(-1)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return {"threshold": [], "fpr": [], "tpr": []}
    order = np.argsort(-s, kind="mergesort")
    s_sorted, t_sorted = s[order], t[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
    tp = np.cumsum(t_sorted)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.nan, s_sorted[last_of_tie]]
    # drop vertices where the direction does not change (cross product of the two segments 0)
    keep = np.ones(len(fpr), dtype=bool)
    if len(fpr) > 2:
        dx1, dy1 = np.diff(fpr)[:-1], np.diff(tpr)[:-1]
        dx2, dy2 = np.diff(fpr)[1:], np.diff(tpr)[1:]
        keep[1:-1] = ~np.isclose(dx1 * dy2 - dy1 * dx2, 0.0, atol=1e-15)
    idx = np.flatnonzero(keep)
    if len(idx) > max_points:
        idx = idx[np.unique(np.linspace(0, len(idx) - 1, max_points).round().astype(int))]
    return {"threshold": [None if v != v else float(v) for v in thresholds[idx]],
            "fpr": fpr[idx].tolist(), "tpr": tpr[idx].tolist()}


def classification_report(y_true, prob, threshold: float = 0.5) -> dict:
    """Confusion matrix, accuracy, balanced accuracy, precision, recall, F1 and ROC AUC."""
    t = np.asarray(y_true, dtype=bool)
    prob = np.asarray(prob, dtype=np.float64)
    c = confusion(t, prob >= threshold)
    recall = _ratio(c["tp"], c["tp"] + c["fn"])
    specificity = _ratio(c["tn"], c["tn"] + c["fp"])
    precision = _ratio(c["tp"], c["tp"] + c["fp"])
    f1 = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
    rates = [r for r in (recall, specificity) if not np.isnan(r)]
    return {
        "n": int(len(t)),
        "confusion": c,
        "accuracy": _ratio(c["tp"] + c["tn"], len(t)),
        "balanced_accuracy": float(np.mean(rates)) if rates else float("nan"),
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": f1,
        "roc_auc": roc_auc(t, prob),
    }


def balanced_accuracy(y_true, prob, threshold: float = 0.5) -> float:
    return classification_report(y_true, prob, threshold)["balanced_accuracy"]


def accuracy_by_magnitude(n_values, y_true, prob, bins: int = 10) -> list[dict]:
    """Accuracy and balanced accuracy per log-spaced magnitude bin (balanced accuracy NaN in a
    bin that holds one class only)."""
    n = np.asarray(n_values, dtype=np.int64)
    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(prob) >= 0.5
    edges, which = magnitude_bins(n, bins)
    rows = []
    for b in range(len(edges) - 1):
        mask = which == b
        if not mask.any():
            continue
        rep = classification_report(y[mask], p[mask].astype(float))
        # Balanced accuracy averages the two classes' recalls: with one class in the bin it is
        # undefined (NaN, drawn as a gap), not that class's recall (a constant "prime" read 0.0).
        both = 0 < int(y[mask].sum()) < int(mask.sum())
        rows.append({"bin_lo": float(edges[b]), "bin_hi": float(edges[b + 1]), "count": int(mask.sum()),
                     "accuracy": rep["accuracy"],
                     "balanced_accuracy": rep["balanced_accuracy"] if both else float("nan"),
                     "prime_share": float(y[mask].mean())})
    return rows


# --------------------------------------------------------------------------------------------
# Generation: the lift's baseline


def magnitude_matched_baseline(n_values, bins: int = 20) -> float:
    """The prime rate a magnitude-matched random odd guesser would reach on these values.

    Log-spaced integer bins (as binned_prime_counts) span [min, max] of `n_values` (values of 0
    count in the first bin, which starts at 1 or more); the result is sum over bins of (share of
    values in the bin) * (exact odd-prime density of the bin). Fewer bins are used if the range
    holds fewer than `bins` integers; min == max gives one bin of one integer (density 1 if it is
    an odd prime, else 0). Values must be integers in [0, 2**53); bins above 10**10 use the Li
    estimate (see odd_prime_density_binned).
    """
    arr, _ = exact_int_array(n_values, "magnitude_matched_baseline")
    bins = require_int("magnitude_matched_baseline", "bins", bins, 1, limits.MAX_BINS)
    v = arr.ravel()
    if v.size == 0:
        raise ValueError("magnitude_matched_baseline: no values")
    edges, which = magnitude_bins(v, bins)
    share = np.bincount(which, minlength=len(edges) - 1) / v.size
    density = odd_prime_density_binned(edges, include_last=True, estimate_above=True)
    return float(np.dot(share, density))



def lift(rate: float, baseline: float) -> float:
    """The lift over chance: a prime rate divided by the rate chance reaches (the baseline); 1.0
    is chance. NaN where it is undefined (a baseline of 0: no odd prime to find)."""
    return float(rate / baseline) if baseline > 0 else float("nan")


def generator_report(n_values) -> dict:
    """How good a batch of generated odd integers is, against the magnitude-matched baseline."""
    n = np.asarray(n_values, dtype=np.int64)
    if n.size == 0:
        raise ValueError("no generated values to report on")
    flags = primes.is_prime(n)
    distinct = np.unique(n)
    distinct_primes = np.unique(n[flags])
    baseline = magnitude_matched_baseline(n)
    lo, hi = int(n.min()), int(n.max())
    distinct_prime_rate = len(distinct_primes) / n.size
    try:  # exact prime counting stops at 10**10; the magnitude-matched baseline estimates above
        same_range = primes.odd_prime_density(lo, hi)
    except ValueError:
        same_range = float("nan")
    return {
        "count": int(n.size),
        "hit_rate": float(flags.mean()),
        "distinct_rate": len(distinct) / n.size,
        "distinct_prime_rate": distinct_prime_rate,
        "same_range_probability": same_range,
        "baseline": float(baseline),
        "lift": lift(distinct_prime_rate, baseline),
        "lo": lo,
        "hi": hi,
    }


# --- continual learning: the accuracy matrix R[i][j] (task j after training on tasks 0..i) ---

def _square(R) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 1:
        raise ValueError(f"accuracy matrix must be square and non-empty, got shape {R.shape}")
    return R


def acc(R) -> float:
    """Average accuracy after the last task: mean_j R[T-1][j]."""
    return float(np.mean(_square(R)[-1]))


def bwt(R) -> float:
    """Backward transfer (Lopez-Paz & Ranzato 2017): mean_{j<T-1} R[T-1][j] - R[j][j].
    Negative = forgetting. Needs T >= 2."""
    R = _square(R)
    if len(R) < 2:
        raise ValueError("BWT needs at least 2 tasks")
    return float(np.mean(R[-1, :-1] - np.diag(R)[:-1]))


def forgetting(R) -> float:
    """Average forgetting (Chaudhry et al. 2018): mean_{j<T-1} max_{l<T-1} R[l][j] - R[T-1][j].
    Needs T >= 2."""
    R = _square(R)
    if len(R) < 2:
        raise ValueError("forgetting needs at least 2 tasks")
    return float(np.mean(np.max(R[:-1, :-1], axis=0) - R[-1, :-1]))
