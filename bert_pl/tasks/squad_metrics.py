"""The official SQuAD metrics (evaluate-v1.1.py and evaluate-v2.0.py), same normalisation, same numbers."""
from __future__ import annotations

import collections
import re
import string
import sys
from typing import Dict, Iterable, List, Optional


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


# -- v1.1 ----------------------------------------------------------------------------------------------------------
def f1_v1(prediction: str, ground_truth: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred_tokens), num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_v1(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def evaluate_v1(articles: List[dict], predictions: Dict[str, str], out=None) -> dict:
    out = out or sys.stderr
    f1 = exact_match = total = 0
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    print(f"Unanswered question {qa['id']} will receive score 0.", file=out)
                    continue
                golds = [a["text"] for a in qa["answers"]]
                pred = predictions[qa["id"]]
                exact_match += max(exact_v1(pred, g) for g in golds)
                f1 += max(f1_v1(pred, g) for g in golds)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


# -- v2.0 ----------------------------------------------------------------------------------------------------------
def _tokens(s: str) -> List[str]:
    return normalize_answer(s).split() if s else []


def exact_v2(a_gold: str, a_pred: str) -> int:
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def f1_v2(a_gold: str, a_pred: str) -> float:
    gold, pred = _tokens(a_gold), _tokens(a_pred)
    common = collections.Counter(gold) & collections.Counter(pred)
    num_same = sum(common.values())
    if len(gold) == 0 or len(pred) == 0:
        return int(gold == pred)  # no-answer: 1 if both are empty, else 0
    if num_same == 0:
        return 0
    precision, recall = num_same / len(pred), num_same / len(gold)
    return (2 * precision * recall) / (precision + recall)


def _make_eval_dict(exact: dict, f1: dict, qids: Optional[Iterable[str]] = None) -> dict:
    qids = list(exact) if qids is None else [q for q in qids if q in exact]
    total = len(qids)
    return collections.OrderedDict([
        ("exact", 100.0 * sum(exact[k] for k in qids) / total),
        ("f1", 100.0 * sum(f1[k] for k in qids) / total),
        ("total", total),
    ])


def _find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = best_score = num_no_ans
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def evaluate_v2(articles: List[dict], predictions: Dict[str, str], na_probs: Optional[Dict[str, float]] = None,
                na_prob_thresh: float = 1.0, out=None) -> dict:
    """As evaluate-v2.0.py. A question with no prediction is reported and scored 0 (the official script would
    stop with a KeyError there)."""
    out = out or sys.stderr
    qid_to_has_ans, exact_raw, f1_raw = {}, {}, {}
    for article in articles:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                qid_to_has_ans[qid] = bool(qa["answers"])
                golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
                if qid not in predictions:
                    print(f"Missing prediction for {qid}", file=out)
                    exact_raw[qid], f1_raw[qid] = 0, 0.0
                    continue
                exact_raw[qid] = max(exact_v2(a, predictions[qid]) for a in golds)
                f1_raw[qid] = max(f1_v2(a, predictions[qid]) for a in golds)
    preds = {q: predictions.get(q, "") for q in qid_to_has_ans}
    na_prob_file_given = na_probs is not None  # the official script reports best thresholds only then
    if na_probs is None:
        na_probs = {k: 0.0 for k in preds}
    else:
        na_probs = {k: na_probs.get(k, 0.0) for k in preds}

    def threshold(scores):
        return {q: float(not qid_to_has_ans[q]) if na_probs[q] > na_prob_thresh else s for q, s in scores.items()}

    exact, f1 = threshold(exact_raw), threshold(f1_raw)
    result = _make_eval_dict(exact, f1)
    has_ans = [k for k, v in qid_to_has_ans.items() if v]
    no_ans = [k for k, v in qid_to_has_ans.items() if not v]
    if has_ans:
        for k, v in _make_eval_dict(exact, f1, has_ans).items():
            result[f"HasAns_{k}"] = v
    if no_ans:
        for k, v in _make_eval_dict(exact, f1, no_ans).items():
            result[f"NoAns_{k}"] = v
    if na_prob_file_given:
        best_exact, exact_thresh = _find_best_thresh(preds, exact_raw, na_probs, qid_to_has_ans)
        best_f1, f1_thresh = _find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
        result.update(best_exact=best_exact, best_exact_thresh=exact_thresh, best_f1=best_f1,
                      best_f1_thresh=f1_thresh)
    return dict(result)


def restrict(articles: List[dict], ids) -> List[dict]:
    """The articles with only the questions in `ids` (evaluation on part of a dev set)."""
    ids = set(ids)
    out = []
    for art in articles:
        paras = []
        for p in art["paragraphs"]:
            qas = [qa for qa in p["qas"] if qa["id"] in ids]
            if qas:
                paras.append({**p, "qas": qas})
        if paras:
            out.append({**art, "paragraphs": paras})
    return out
