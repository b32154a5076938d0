"""bert_pl.tasks.metrics against scikit-learn and scipy, including degenerate inputs."""
import math

import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as skm

from bert_pl.tasks import metrics as M

SEEDS = [0, 1, 2, 3]
TOL = dict(rtol=1e-12, atol=1e-12)
# Degenerate inputs must be silent: any warning, ours or numpy's, fails the test.
pytestmark = pytest.mark.filterwarnings("error")


def _single_label(seed, k, n=60):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    # Mostly right, partly random, so every metric lands well inside (0, 1).
    preds = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, n))
    return preds, labels


def _multi_label(seed, n=40, c=5):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.3).astype(int)
    labels[:5] = 0  # rows with no labels at all
    preds = np.where(rng.random((n, c)) < 0.7, labels, rng.integers(0, 2, (n, c)))
    preds[5:8] = labels[5:8]  # some exact matches
    return preds, labels


def _sk_f1(preds, y_true, average, **kw):
    return skm.f1_score(y_true, preds, average=average, zero_division=0, **kw)


# --- single-label ----------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 7])
@pytest.mark.parametrize("seed", SEEDS)
def test_single_label_f1_matches_sklearn(seed, k):
    preds, labels = _single_label(seed, k)
    np.testing.assert_allclose(M.f1_macro(preds, labels), _sk_f1(preds, labels, "macro"), **TOL)
    np.testing.assert_allclose(M.f1_micro(preds, labels), _sk_f1(preds, labels, "micro"), **TOL)
    np.testing.assert_allclose(
        M.f1_macro(preds, labels, num_classes=k + 2),
        _sk_f1(preds, labels, "macro", labels=list(range(k + 2))),
        **TOL,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_f1_macro_averages_classes_in_labels_or_preds(seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice([0, 2, 5], 30)  # class 6 only predicted, classes 1, 3, 4 nowhere
    preds = labels.copy()
    preds[:4] = 6
    np.testing.assert_allclose(M.f1_macro(preds, labels), _sk_f1(preds, labels, "macro"), **TOL)
    np.testing.assert_allclose(M.f1_micro(preds, labels), _sk_f1(preds, labels, "micro"), **TOL)


@pytest.mark.parametrize("k", [2, 3, 7])
@pytest.mark.parametrize("seed", SEEDS)
def test_classification_metrics_single_label(seed, k):
    preds, labels = _single_label(seed, k)
    out = M.classification_metrics(preds, labels, "single_label", k)
    expected = {
        "acc": skm.accuracy_score(labels, preds),
        "mcc": skm.matthews_corrcoef(labels, preds),
    }
    if k == 2:
        expected["f1"] = skm.f1_score(labels, preds, zero_division=0)
        expected["acc_and_f1"] = (expected["acc"] + expected["f1"]) / 2
    else:
        expected["f1_macro"] = _sk_f1(preds, labels, "macro")
        expected["f1_micro"] = _sk_f1(preds, labels, "micro")
    assert list(out) == M.metric_names("single_label", k)
    assert set(out) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(out[name], value, **TOL, err_msg=name)


# --- multi-label -----------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_multilabel_matches_sklearn(seed):
    preds, labels = _multi_label(seed)
    expected = {
        "f1_micro": _sk_f1(preds, labels, "micro"),
        "f1_macro": _sk_f1(preds, labels, "macro"),
        "exact_match": skm.accuracy_score(labels, preds),
    }
    np.testing.assert_allclose(M.multilabel_f1_micro(preds, labels), expected["f1_micro"], **TOL)
    np.testing.assert_allclose(M.multilabel_f1_macro(preds, labels), expected["f1_macro"], **TOL)
    np.testing.assert_allclose(M.multilabel_exact_match(preds, labels), expected["exact_match"], **TOL)
    out = M.classification_metrics(preds, labels, "multi_label", 5)
    assert list(out) == M.metric_names("multi_label", 5)
    for name, value in expected.items():
        np.testing.assert_allclose(out[name], value, **TOL, err_msg=name)


def test_multilabel_column_never_true_nor_predicted_scores_zero():
    preds, labels = _multi_label(0)
    preds[:, 2] = labels[:, 2] = 0
    np.testing.assert_allclose(M.multilabel_f1_macro(preds, labels), _sk_f1(preds, labels, "macro"), **TOL)


def test_multilabel_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one shape"):
        M.multilabel_f1_micro(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="one shape"):
        M.multilabel_f1_macro(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="label columns"):
        M.classification_metrics(np.zeros((3, 4)), np.zeros((3, 4)), "multi_label", 5)


# --- regression ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_matches_scipy_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.normal(size=50)
    preds = labels + rng.normal(scale=0.5, size=50)
    preds[:5] = preds[5]  # ties for the rank correlation
    out = M.classification_metrics(preds, labels, "regression", 1)
    assert list(out) == M.metric_names("regression", 1)
    np.testing.assert_allclose(M.mse(preds, labels), skm.mean_squared_error(labels, preds), **TOL)
    np.testing.assert_allclose(out["mse"], skm.mean_squared_error(labels, preds), **TOL)
    np.testing.assert_allclose(out["pearson"], scipy.stats.pearsonr(preds, labels)[0], rtol=1e-10)
    np.testing.assert_allclose(out["spearman"], scipy.stats.spearmanr(preds, labels)[0], rtol=1e-10)


def test_regression_accepts_column_vectors():
    preds, labels = np.arange(6.0)[:, None], np.arange(6.0)[::-1]
    out = M.classification_metrics(preds, labels, "regression", 1)
    np.testing.assert_allclose([out["pearson"], out["spearman"]], [-1.0, -1.0], **TOL)


# --- degenerate inputs -----------------------------------------------------


def _assert_finite(out):
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values()), out


@pytest.mark.parametrize("k", [2, 3, 7])
def test_constant_predictions(k):
    labels = np.arange(20) % k
    preds = np.zeros(20, dtype=int)
    out = M.classification_metrics(preds, labels, "single_label", k)
    _assert_finite(out)
    assert out["mcc"] == 0.0
    np.testing.assert_allclose(out["acc"], skm.accuracy_score(labels, preds), **TOL)
    if k == 2:
        assert out["f1"] == 0.0
    else:
        np.testing.assert_allclose(out["f1_macro"], _sk_f1(preds, labels, "macro"), **TOL)
        np.testing.assert_allclose(out["f1_micro"], _sk_f1(preds, labels, "micro"), **TOL)


@pytest.mark.parametrize("k", [2, 3])
def test_single_row(k):
    for pred, label in [(1, 1), (0, 1), (0, 0)]:
        out = M.classification_metrics([pred], [label], "single_label", k)
        _assert_finite(out)
        assert out["mcc"] == 0.0
        assert out["acc"] == float(pred == label)
    _assert_finite(M.classification_metrics([0.5], [0.2], "regression", 1))
    _assert_finite(M.classification_metrics([[0, 1, 0]], [[0, 1, 1]], "multi_label", 3))


def test_all_one_class_everywhere():
    out = M.classification_metrics([1, 1, 1], [1, 1, 1], "single_label", 3)
    assert out == {"acc": 1.0, "f1_macro": 1.0, "f1_micro": 1.0, "mcc": 0.0}
    assert M.f1_binary([0, 0], [0, 0]) == 0.0  # class 1 never occurs: zero_division=0


def test_constant_regression():
    out = M.classification_metrics([1.0, 2.0, 3.0], [4.0, 4.0, 4.0], "regression", 1)
    assert out["pearson"] == 0.0 and out["spearman"] == 0.0
    np.testing.assert_allclose(out["mse"], skm.mean_squared_error([4.0] * 3, [1.0, 2.0, 3.0]), **TOL)
    out = M.classification_metrics([2.0, 2.0], [2.0, 2.0], "regression", 1)
    assert out == {"pearson": 0.0, "spearman": 0.0, "mse": 0.0}


def test_multilabel_all_empty():
    zeros = np.zeros((4, 5), dtype=int)
    out = M.classification_metrics(zeros, zeros, "multi_label", 5)
    assert out == {"f1_micro": 0.0, "f1_macro": 0.0, "exact_match": 1.0}
    assert out["f1_micro"] == _sk_f1(zeros, zeros, "micro")
    assert out["f1_macro"] == _sk_f1(zeros, zeros, "macro")
    ones = np.ones((4, 5), dtype=int)
    out = M.classification_metrics(zeros, ones, "multi_label", 5)
    assert out == {"f1_micro": 0.0, "f1_macro": 0.0, "exact_match": 0.0}


# --- names -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,num_labels,expected",
    [
        ("single_label", 2, {"acc", "f1", "acc_and_f1", "mcc"}),
        ("single_label", 3, {"acc", "f1_macro", "f1_micro", "mcc"}),
        ("single_label", 7, {"acc", "f1_macro", "f1_micro", "mcc"}),
        ("regression", 1, {"pearson", "spearman", "mse"}),
        ("multi_label", 5, {"f1_micro", "f1_macro", "exact_match"}),
    ],
)
def test_metric_names(kind, num_labels, expected):
    assert set(M.metric_names(kind, num_labels)) == expected
    assert M.DEFAULT_MAIN_METRIC[kind] in expected
    assert M.check_main_metric(None, kind, num_labels) == M.DEFAULT_MAIN_METRIC[kind]
    for name in expected:
        assert M.check_main_metric(name, kind, num_labels) == name
    with pytest.raises(ValueError, match="choose one of"):
        M.check_main_metric("bleu", kind, num_labels)


def test_unknown_kind_and_too_few_classes():
    with pytest.raises(ValueError, match="unknown task kind"):
        M.metric_names("ranking", 2)
    with pytest.raises(ValueError, match="num_labels >= 2"):
        M.classification_metrics([0], [0], "single_label", 1)


def test_glue_metrics_unchanged():
    preds, labels = _single_label(0, 2)
    assert set(M.METRICS) == {"mcc", "acc", "acc_f1", "pearson_spearman"}
    np.testing.assert_allclose(M.METRICS["mcc"](preds, labels)["mcc"], skm.matthews_corrcoef(labels, preds), **TOL)
    out = M.METRICS["acc_f1"](preds, labels)
    np.testing.assert_allclose(out["f1"], skm.f1_score(labels, preds), **TOL)


def test_learning_check_names_the_constant_predictor_and_its_score():
    from bert_pl.tasks.metrics import learning_check

    labels = np.array([1] * 279 + [0] * 129)  # MRPC dev: 68.4% paraphrases
    always_yes = learning_check(np.ones_like(labels), labels, "single_label", ["0", "1"], "acc_and_f1")
    assert always_yes["degenerate"] == "every prediction is '1'"
    base = always_yes["baseline"]
    assert base["predictor"] == "always '1' (the majority class)"
    assert base["acc"] == pytest.approx(279 / 408) and base["f1"] == pytest.approx(2 * 279 / (279 + 408))
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(408) < 0.5, labels, 1 - labels)  # varied but no better than the baseline
    assert "no better than always '1'" in learning_check(noisy, labels, "single_label", ["0", "1"], "acc")["degenerate"]
    good = np.where(rng.random(408) < 0.9, labels, 1 - labels)
    assert learning_check(good, labels, "single_label", ["0", "1"], "acc")["degenerate"] is None
    # regression: the same score everywhere, or no better than the mean
    y = rng.random(100) * 5
    assert "same score" in learning_check(np.full(100, 2.5), y, "regression", ["score"], "pearson")["degenerate"]
    assert "predicting the mean" in learning_check(y[::-1], y, "regression", ["score"], "pearson")["degenerate"]
    assert learning_check(y + 0.1, y, "regression", ["score"], "pearson")["degenerate"] is None
    # multi-label: one label set for every row
    multi = (rng.random((50, 3)) < 0.4).astype(int)
    same = np.tile([1, 0, 0], (50, 1))
    assert learning_check(same, multi, "multi_label", ["a", "b", "c"], "f1_micro")["degenerate"] == \
        "every row gets the same labels ['a']"
    assert learning_check(multi, multi, "multi_label", ["a", "b", "c"], "f1_micro")["degenerate"] is None
