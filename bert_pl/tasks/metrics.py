"""Classification and regression metrics by their definitions (numpy only).

GLUE's metrics (Matthews correlation, accuracy, binary F1, Pearson, Spearman) plus
macro/micro F1 for any label set, multi-label F1 and exact match, and MSE. Each
matches scikit-learn / scipy, with 0.0 wherever a value is undefined
(``zero_division=0``), so degenerate inputs never crash or warn.
"""
from __future__ import annotations

from typing import List

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


def _f1_from_counts(tp, fp, fn) -> np.ndarray:
    """Elementwise 2tp / (2tp + fp + fn), 0 where the denominator is 0."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def _class_counts(preds, labels, classes):
    preds, labels = np.asarray(preds).ravel(), np.asarray(labels).ravel()
    if preds.shape != labels.shape:
        raise ValueError(f"preds and labels differ in length: {preds.shape} vs {labels.shape}")
    p = preds[:, None] == classes[None, :]
    t = labels[:, None] == classes[None, :]
    return (p & t).sum(0), (p & ~t).sum(0), (~p & t).sum(0)


def f1_macro(preds, labels, num_classes=None) -> float:
    """Unweighted mean of per-class F1 for single-label integer predictions.

    Averages over the classes present in labels or preds (scikit-learn's default);
    with ``num_classes`` over 0..num_classes-1 instead, where an absent class scores 0.
    """
    if num_classes is None:
        classes = np.union1d(np.asarray(preds).ravel(), np.asarray(labels).ravel())
    else:
        classes = np.arange(num_classes)
    if classes.size == 0:
        return 0.0
    return float(_f1_from_counts(*_class_counts(preds, labels, classes)).mean())


def f1_micro(preds, labels) -> float:
    """F1 of the pooled per-class counts; equals accuracy for single-label predictions."""
    classes = np.union1d(np.asarray(preds).ravel(), np.asarray(labels).ravel())
    tp, fp, fn = (c.sum() for c in _class_counts(preds, labels, classes))
    return float(_f1_from_counts(tp, fp, fn))


def _indicator_pair(preds, labels):
    preds, labels = np.asarray(preds), np.asarray(labels)
    if preds.ndim != 2 or preds.shape != labels.shape:
        raise ValueError(
            f"multi-label preds and labels must be 0/1 matrices of one shape (N, C); "
            f"got {preds.shape} and {labels.shape}"
        )
    return preds != 0, labels != 0


def multilabel_f1_micro(preds, labels) -> float:
    """F1 over every (row, label) cell of 0/1 matrices of shape (N, C)."""
    p, t = _indicator_pair(preds, labels)
    return float(_f1_from_counts((p & t).sum(), (p & ~t).sum(), (~p & t).sum()))


def multilabel_f1_macro(preds, labels) -> float:
    """Unweighted mean over the C label columns of each column's F1 (0 for a column never predicted nor true)."""
    p, t = _indicator_pair(preds, labels)
    if p.shape[1] == 0:
        return 0.0
    return float(_f1_from_counts((p & t).sum(0), (p & ~t).sum(0), (~p & t).sum(0)).mean())


def multilabel_exact_match(preds, labels) -> float:
    """Subset accuracy: the fraction of rows whose whole label set is predicted exactly."""
    p, t = _indicator_pair(preds, labels)
    return float((p == t).all(1).mean())


def mse(preds, labels) -> float:
    """Mean squared error."""
    preds = np.asarray(preds, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=np.float64).ravel()
    return float(np.mean((preds - labels) ** 2))


KINDS = ("single_label", "regression", "multi_label")
DEFAULT_MAIN_METRIC = {"single_label": "acc", "regression": "pearson", "multi_label": "f1_micro"}


def metric_names(kind: str, num_labels: int) -> list[str]:
    """The keys ``classification_metrics(..., kind, num_labels)`` returns, in its order."""
    if kind == "single_label":
        if num_labels < 2:
            raise ValueError(f"single_label needs num_labels >= 2, got {num_labels}")
        return ["acc", "f1", "acc_and_f1", "mcc"] if num_labels == 2 else ["acc", "f1_macro", "f1_micro", "mcc"]
    if kind == "regression":
        return ["pearson", "spearman", "mse"]
    if kind == "multi_label":
        return ["f1_micro", "f1_macro", "exact_match"]
    raise ValueError(f"unknown task kind {kind!r}; expected one of {list(KINDS)}")


def check_main_metric(name, kind: str, num_labels: int) -> str:
    """``name`` if ``classification_metrics`` reports it for this kind, the kind's default if None; else ValueError."""
    valid = metric_names(kind, num_labels)
    if name is None:
        return DEFAULT_MAIN_METRIC[kind]
    if name not in valid:
        raise ValueError(
            f"main metric {name!r} is not reported for a {kind} task with {num_labels} labels; "
            f"choose one of {valid}"
        )
    return name


def classification_metrics(preds, labels, kind: str, num_labels: int) -> dict[str, float]:
    """Every metric for a task kind, keyed as ``metric_names(kind, num_labels)``.

    single_label: integer class ids; regression: floats; multi_label: 0/1 matrices (N, num_labels).
    """
    names = metric_names(kind, num_labels)
    if kind == "single_label":
        preds, labels = np.asarray(preds).ravel(), np.asarray(labels).ravel()
        out = {"acc": accuracy(preds, labels), "mcc": matthews_corrcoef(preds, labels)}
        if num_labels == 2:
            out["f1"] = f1_binary(preds, labels)
            out["acc_and_f1"] = (out["acc"] + out["f1"]) / 2  # GLUE's score for MRPC and QQP
        else:
            out["f1_macro"] = f1_macro(preds, labels)
            out["f1_micro"] = f1_micro(preds, labels)
    elif kind == "regression":
        preds = np.asarray(preds, dtype=np.float64).ravel()
        labels = np.asarray(labels, dtype=np.float64).ravel()
        out = {"pearson": pearson(preds, labels), "spearman": spearman(preds, labels), "mse": mse(preds, labels)}
    else:
        p, _ = _indicator_pair(preds, labels)
        if p.shape[1] != num_labels:
            raise ValueError(f"multi_label expects {num_labels} label columns, got {p.shape[1]}")
        out = {
            "f1_micro": multilabel_f1_micro(preds, labels),
            "f1_macro": multilabel_f1_macro(preds, labels),
            "exact_match": multilabel_exact_match(preds, labels),
        }
    return {k: out[k] for k in names}


def learning_check(preds, labels, kind: str, label_names: List[str], main_metric: str) -> dict:
    """What a model that learned nothing scores on this split, and whether this one looks like it:
    {"baseline": {"predictor": ..., metric: value}, "degenerate": reason or None}. The baseline is the dev set's
    majority class (single-label), each label's majority (multi-label) or the mean (regression); a model is
    degenerate when it answers the same for every row, or does no better than that baseline on the main metric."""
    labels = np.asarray(labels)
    preds = np.asarray(preds)
    num_labels = len(label_names)
    if kind == "regression":
        labels, preds = labels.astype(np.float64).ravel(), preds.astype(np.float64).ravel()
        base = {"predictor": "the mean of the gold scores", "mse": mse(np.full_like(labels, labels.mean()), labels)}
        if preds.std() <= 1e-6 * (labels.std() + 1e-12):
            return {"baseline": base, "degenerate": f"every prediction is the same score ({preds[0]:.4g})"}
        if mse(preds, labels) >= base["mse"]:
            return {"baseline": base, "degenerate": f"mse {mse(preds, labels):.4f} is no better than predicting the "
                                                    f"mean score ({base['mse']:.4f})"}
        return {"baseline": base, "degenerate": None}
    if kind == "multi_label":
        majority = (labels.mean(0) > 0.5).astype(labels.dtype)
        constant = np.broadcast_to(majority, labels.shape)
        base = {"predictor": "each label's majority value",
                **classification_metrics(constant, labels, kind, num_labels)}
        if len(np.unique(preds, axis=0)) == 1 and len(np.unique(labels, axis=0)) > 1:
            chosen = [label_names[j] for j in np.flatnonzero(preds[0])]
            return {"baseline": base, "degenerate": f"every row gets the same labels {chosen}"}
    else:
        values, counts = np.unique(labels, return_counts=True)
        majority = values[counts.argmax()]
        constant = np.full_like(labels, majority)
        base = {"predictor": f"always {label_names[int(majority)]!r} (the majority class)",
                **classification_metrics(constant, labels, kind, num_labels)}
        if len(np.unique(preds)) == 1 and len(values) > 1:
            return {"baseline": base, "degenerate": f"every prediction is {label_names[int(preds[0])]!r}"}
    value = classification_metrics(preds, labels, kind, num_labels)[main_metric]
    if value <= base[main_metric] + 1e-9:
        return {"baseline": base, "degenerate": f"{main_metric} {value:.4f} is no better than {base['predictor']} "
                                                f"({base[main_metric]:.4f})"}
    return {"baseline": base, "degenerate": None}
