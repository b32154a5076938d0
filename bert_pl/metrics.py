"""GLUE metrics by their definitions (numpy only): Matthews correlation, accuracy, F1, Pearson, Spearman."""
from __future__ import annotations

import numpy as np


def accuracy(preds, labels) -> float:
    preds, labels = np.asarray(preds), np.asarray(labels)
    return float((preds == labels).mean())


def f1_binary(preds, labels, positive=1) -> float:
    preds, labels = np.asarray(preds) == positive, np.asarray(labels) == positive
    tp = float(np.sum(preds & labels))
    fp = float(np.sum(preds & ~labels))
    fn = float(np.sum(~preds & labels))
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def matthews_corrcoef(preds, labels) -> float:
    """Multi-class form (Gorodkin, 2004); 0 when undefined, as scikit-learn."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    classes = np.union1d(preds, labels)
    idx_p = np.searchsorted(classes, preds)
    idx_l = np.searchsorted(classes, labels)
    c = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(c, (idx_l, idx_p), 1)
    t_k, p_k = c.sum(1), c.sum(0)
    n, correct = c.sum(), np.trace(c)
    cov_yp = correct * n - t_k @ p_k
    cov_pp = n * n - p_k @ p_k
    cov_yy = n * n - t_k @ t_k
    if cov_pp * cov_yy == 0:
        return 0.0
    return float(cov_yp / np.sqrt(cov_yy * cov_pp))


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xm, ym = x - x.mean(), y - y.mean()
    denom = np.sqrt((xm @ xm) * (ym @ ym))
    return float(xm @ ym / denom) if denom else 0.0


def _rank(a) -> np.ndarray:
    """Average ranks for ties (as scipy.stats.rankdata)."""
    a = np.asarray(a, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=np.float64)
    sorted_a = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    return pearson(_rank(x), _rank(y))


METRICS = {
    "mcc": lambda p, l: {"mcc": matthews_corrcoef(p, l)},
    "acc": lambda p, l: {"acc": accuracy(p, l)},
    "acc_f1": lambda p, l: {"acc": accuracy(p, l), "f1": f1_binary(p, l)},
    "pearson_spearman": lambda p, l: {"pearson": pearson(p, l), "spearman": spearman(p, l)},
}
