"""SQuAD v1.1 / v2.0 as Google's `run_squad.py` does it: whitespace words with character offsets, WordPiece
sub-tokens mapped back to words, sliding windows (`doc_stride`) with each token's max-context window, n-best span
search, `get_final_text` alignment back to the original text, and the v2 null-score threshold."""
from __future__ import annotations

import collections
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bert_pl.io.atomic import atomic_write_text
from bert_pl.tasks import squad_metrics
from bert_pl.tasks.base import Task, TaskDataError, limits_per_split
from bert_pl.tasks.predictor import PredictError, Predictor

log = logging.getLogger(__name__)


class SquadDataError(TaskDataError):
    pass


@dataclass
class SquadExample:
    qas_id: str
    question_text: str
    doc_tokens: List[str]
    orig_answer_text: str = ""
    start_position: int = -1  # word index
    end_position: int = -1
    is_impossible: bool = False
    answers: List[str] = field(default_factory=list)


def _is_whitespace(c: str) -> bool:
    return c in " \t\r\n" or ord(c) == 0x202F


def split_words(context: str):
    """Whitespace words and, for each character, the index of its word (run_squad.py's char_to_word_offset)."""
    doc_tokens, char_to_word_offset, prev_ws = [], [], True
    for c in context:
        if _is_whitespace(c):
            prev_ws = True
        else:
            if prev_ws:
                doc_tokens.append(c)
            else:
                doc_tokens[-1] += c
            prev_ws = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def examples_from_articles(articles: List[dict], is_training: bool, version_2: bool, source: str = "") \
        -> List[SquadExample]:
    """SQuAD JSON `data` -> examples. Training answers whose text is not at answer_start are counted and
    skipped (as run_squad.py does), never a crash. Evaluation questions none of whose answers occur in their context
    (compared as the metric compares: normalised) are kept, since the official score counts them, with a warning:
    they score 0 whatever the model predicts."""
    examples, mismatched, absent = [], [], []
    for a, article in enumerate(articles):
        where = f"{source or 'SQuAD'}: article {a}"
        for p, paragraph in enumerate(_field(article, "paragraphs", list, where)):
            context = _field(paragraph, "context", str, f"{where}, paragraph {p}")
            doc_tokens, char_to_word = split_words(context)
            normalised_context = None
            for q, qa in enumerate(_field(paragraph, "qas", list, f"{where}, paragraph {p}")):
                at = f"{where}, paragraph {p}, question {qa.get('id', q) if isinstance(qa, dict) else q}"
                impossible = bool(qa.get("is_impossible", False)) if version_2 else False
                answers = [_field(x, "text", str, f"{at}, answer") for x in _field(qa, "answers", list, at, [])]
                ex = SquadExample(_field(qa, "id", str, at), _field(qa, "question", str, at), doc_tokens,
                                  is_impossible=impossible, answers=answers)
                if not is_training and answers and not impossible:
                    if normalised_context is None:
                        normalised_context = squad_metrics.normalize_answer(context)
                    if not any(squad_metrics.normalize_answer(x) in normalised_context for x in answers):
                        absent.append(ex.qas_id)
                if is_training and not impossible:
                    if not qa.get("answers"):
                        mismatched.append(f"{qa['id']}: no answer")
                        continue
                    ans = qa["answers"][0]
                    start = _field(ans, "answer_start", int, f"{at}, answer")
                    end_char = start + len(ans["text"]) - 1
                    if start < 0 or end_char >= len(char_to_word):
                        mismatched.append(f"{qa['id']}: answer_start {start} outside the context")
                        continue
                    ex.orig_answer_text = ans["text"]
                    ex.start_position, ex.end_position = char_to_word[start], char_to_word[end_char]
                    actual = " ".join(doc_tokens[ex.start_position:ex.end_position + 1])
                    cleaned = " ".join(ans["text"].split())
                    if actual.find(cleaned) == -1:
                        mismatched.append(f"{qa['id']}: {actual!r} vs {cleaned!r}")
                        continue
                examples.append(ex)
    if mismatched:
        log.warning("%s: skipped %d training question(s) whose answer text does not match answer_start, e.g. %s",
                    source, len(mismatched), "; ".join(mismatched[:3]))
    if absent:
        log.warning("%s: %d of %d question(s) have no answer that occurs in their context (ids %s): they score EM/F1 0 "
                    "whatever the model predicts; check the file's answers", source or "SQuAD", len(absent),
                    len(examples), ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else ""))
    return examples


def _field(obj, key: str, kind, where: str, default=None):
    """obj[key] as `kind` (an int given as digits is taken), else a one-line error naming where and what."""
    if not isinstance(obj, dict):
        raise SquadDataError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    if key not in obj:
        if default is not None:
            return default
        raise SquadDataError(f"{where}: no {key!r} field (SQuAD's layout: data[].paragraphs[].context and "
                             f".qas[].id/question/answers[].text/answer_start)")
    value = obj[key]
    if kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool) and key == "id":
        return str(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SquadDataError(f"{where}: {key!r} is {value!r}; expected {'a number' if kind is int else kind.__name__}")
    return value


def read_json(path: Path) -> List[dict]:
    if not path.is_file():
        from bert_pl.io.missing import link_problem

        raise SquadDataError(f"SQuAD file {path} {link_problem(path) or 'does not exist'}; pass data_dir=FOLDER "
                             f"holding it, or "
                             f"data.source=hub when online")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SquadDataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise SquadDataError(f"{path}: not a SQuAD file (expected {{'version': ..., 'data': [articles]}})")
    return data["data"]


def articles_from_hub(name: str, split: str) -> List[dict]:
    """rajpurkar/squad(_v2) rows regrouped into SQuAD JSON articles, so both sources give the same examples."""
    import datasets

    from bert_pl.io.hub import require_online

    require_online(f"SQuAD ({name})", "data_dir=FOLDER with train-v1.1.json/dev-v1.1.json (or v2.0)",
                   repo_id=name, repo_type="dataset")
    ds = datasets.load_dataset(name, split=split)
    articles: Dict[str, dict] = {}
    paragraphs: Dict[tuple, dict] = {}
    for row in ds:
        art = articles.setdefault(row["title"], {"title": row["title"], "paragraphs": []})
        key = (row["title"], row["context"])
        if key not in paragraphs:
            paragraphs[key] = {"context": row["context"], "qas": []}
            art["paragraphs"].append(paragraphs[key])
        answers = [{"text": t, "answer_start": s} for t, s in zip(row["answers"]["text"],
                                                                row["answers"]["answer_start"])]
        paragraphs[key]["qas"].append({"id": row["id"], "question": row["question"], "answers": answers,
                                       "is_impossible": not answers})
    return list(articles.values())


# -- features ------------------------------------------------------------------------------------------------------
def _improve_answer_span(doc_tokens, start, end, tokenizer_fn, orig_answer_text):
    """The tokenised answer may match a sub-span better ("1895" inside "(1895-1943)."): as run_squad.py."""
    tok_answer_text = " ".join(tokenizer_fn(orig_answer_text))
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
                return new_start, new_end
    return start, end


def _check_is_max_context(doc_spans, cur_span_index, position) -> bool:
    """A token's best window is the one where it has the most context on its shorter side (+ small length bonus)."""
    best_score, best_span_index = None, None
    for span_index, (span_start, span_length) in enumerate(doc_spans):
        end = span_start + span_length - 1
        if position < span_start or position > end:
            continue
        score = min(position - span_start, end - position) + 0.01 * span_length
        if best_score is None or score > best_score:
            best_score, best_span_index = score, span_index
    return cur_span_index == best_span_index


def convert_examples_to_features(examples: List[SquadExample], tokenizer, max_seq_length: int = 384,
                                 doc_stride: int = 128, max_query_length: int = 64, is_training: bool = False,
                                 progress=None):
    """Returns (features for the model, per-feature metadata for post-processing). `progress(done, total)` is
    called every 1,000 examples."""
    vocab = tokenizer.get_vocab()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]

    def tokenize(text: str) -> List[str]:
        return tokenizer.encode(text, add_special_tokens=False).tokens

    questions = tokenizer.encode_batch([e.question_text for e in examples], add_special_tokens=False)
    docs = tokenizer.encode_batch([e.doc_tokens for e in examples], is_pretokenized=True, add_special_tokens=False)
    features, meta = [], []
    for ex_index, (ex, q, d) in enumerate(zip(examples, questions, docs)):
        if progress is not None and ex_index % 1000 == 0:
            progress(ex_index, len(examples))
        query_ids = q.ids[:max_query_length]
        all_doc_tokens, all_doc_ids, tok_to_orig_index = d.tokens, d.ids, d.word_ids
        orig_to_tok_index = [0] * len(ex.doc_tokens)
        seen = set()
        for ti, w in enumerate(tok_to_orig_index):
            if w not in seen:
                seen.add(w)
                orig_to_tok_index[w] = ti
        # words that tokenise to nothing (e.g. control characters) point at the next token
        for w in range(len(ex.doc_tokens) - 1, -1, -1):
            if w not in seen:
                orig_to_tok_index[w] = orig_to_tok_index[w + 1] if w + 1 < len(ex.doc_tokens) else len(all_doc_ids)
        tok_start = tok_end = None
        if is_training and ex.is_impossible:
            tok_start = tok_end = -1
        if is_training and not ex.is_impossible:
            tok_start = orig_to_tok_index[ex.start_position]
            nxt = ex.end_position + 1
            tok_end = orig_to_tok_index[nxt] - 1 if nxt < len(ex.doc_tokens) else len(all_doc_tokens) - 1
            tok_start, tok_end = _improve_answer_span(all_doc_tokens, tok_start, tok_end, tokenize,
                                                      ex.orig_answer_text)

        max_tokens_for_doc = max_seq_length - len(query_ids) - 3
        if max_tokens_for_doc <= 0:
            raise SquadDataError(f"max_seq_length={max_seq_length} leaves no room for the context after a "
                                 f"{len(query_ids)}-token question; raise max_seq_length or lower max_query_length")
        doc_spans, start_offset = [], 0
        while start_offset < len(all_doc_ids):
            length = min(len(all_doc_ids) - start_offset, max_tokens_for_doc)
            doc_spans.append((start_offset, length))
            if start_offset + length == len(all_doc_ids):
                break
            start_offset += min(length, doc_stride)
        if not doc_spans:  # empty context: one window with the question only
            doc_spans = [(0, 0)]

        for span_index, (span_start, span_length) in enumerate(doc_spans):
            offset = len(query_ids) + 2
            input_ids = [cls_id, *query_ids, sep_id, *all_doc_ids[span_start:span_start + span_length], sep_id]
            token_type_ids = [0] * offset + [1] * (span_length + 1)
            token_to_orig_map = {offset + i: tok_to_orig_index[span_start + i] for i in range(span_length)}
            token_is_max_context = {offset + i: _check_is_max_context(doc_spans, span_index, span_start + i)
                                    for i in range(span_length)}
            feat = {"input_ids": input_ids, "token_type_ids": token_type_ids, "example_index": ex_index,
                    "feature_index": len(features)}
            if is_training:
                span_end = span_start + span_length - 1
                if ex.is_impossible or not (span_start <= tok_start and tok_end <= span_end):
                    start_pos = end_pos = 0  # the answer is not in this window: point at [CLS]
                else:
                    start_pos, end_pos = tok_start - span_start + offset, tok_end - span_start + offset
                feat["start_positions"], feat["end_positions"] = start_pos, end_pos
            features.append(feat)
            tokens = ["[CLS]", *q.tokens[:max_query_length], "[SEP]",
                      *all_doc_tokens[span_start:span_start + span_length], "[SEP]"]
            meta.append({"example_index": ex_index, "tokens": tokens, "span_start": span_start, "doc_offset": offset,
                         "token_to_orig_map": token_to_orig_map,
                         "token_is_max_context": token_is_max_context})
    return features, meta


# -- post-processing -----------------------------------------------------------------------------------------------
def _get_best_indexes(logits, n_best_size: int) -> List[int]:
    order = np.argsort(-np.asarray(logits), kind="stable")
    return [int(i) for i in order[:n_best_size]]


def _softmax(scores: List[float]) -> List[float]:
    if not scores:
        return []
    m = max(scores)
    exps = [math.exp(s - m) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def get_final_text(pred_text: str, orig_text: str, basic_tokenize) -> str:
    """Project the normalised prediction back onto the original text span (run_squad.py's get_final_text)."""

    def strip_spaces(text):
        ns_chars, ns_to_s_map = [], collections.OrderedDict()
        for i, c in enumerate(text):
            if c == " ":
                continue
            ns_to_s_map[len(ns_chars)] = i
            ns_chars.append(c)
        return "".join(ns_chars), ns_to_s_map

    tok_text = " ".join(basic_tokenize(orig_text))
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        return orig_text
    end_position = start_position + len(pred_text) - 1
    orig_ns_text, orig_ns_to_s_map = strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        return orig_text
    tok_s_to_ns_map = {v: k for k, v in tok_ns_to_s_map.items()}
    orig_start = orig_ns_to_s_map.get(tok_s_to_ns_map.get(start_position))
    orig_end = orig_ns_to_s_map.get(tok_s_to_ns_map.get(end_position))
    if orig_start is None or orig_end is None:
        return orig_text
    return orig_text[orig_start:orig_end + 1]


def basic_tokenizer(tokenizer):
    """BERT's basic tokenization (normalise, split on whitespace and punctuation) from the tokenizer's own parts."""
    norm, pre = tokenizer.normalizer, tokenizer.pre_tokenizer

    def run(text: str) -> List[str]:
        return [piece for piece, _ in pre.pre_tokenize_str(norm.normalize_str(text) if norm else text)]

    return run


def postprocess(examples: List[SquadExample], meta: List[dict], start_logits, end_logits, tokenizer,
                n_best_size: int = 20, max_answer_length: int = 30, version_2: bool = False,
                null_score_diff_threshold: float = 0.0):
    """Returns (predictions, nbest, null_odds) keyed by question id, exactly as run_squad.py's write_predictions."""
    basic = basic_tokenizer(tokenizer)
    by_example = collections.defaultdict(list)
    for fi, m in enumerate(meta):
        by_example[m["example_index"]].append(fi)
    predictions, all_nbest, null_odds = collections.OrderedDict(), collections.OrderedDict(), collections.OrderedDict()
    for ex_index, ex in enumerate(examples):
        prelim = []
        score_null, null_feature, null_start, null_end = 1e6, 0, 0.0, 0.0
        for fi in by_example.get(ex_index, []):
            m, s_log, e_log = meta[fi], start_logits[fi], end_logits[fi]
            n_tok = len(m["tokens"])
            if version_2:
                feature_null = float(s_log[0] + e_log[0])
                if feature_null < score_null:
                    score_null, null_feature, null_start, null_end = feature_null, fi, float(s_log[0]), float(e_log[0])
            for s in _get_best_indexes(s_log[:n_tok], n_best_size):
                for e in _get_best_indexes(e_log[:n_tok], n_best_size):
                    if s not in m["token_to_orig_map"] or e not in m["token_to_orig_map"]:
                        continue
                    if not m["token_is_max_context"].get(s, False) or e < s or e - s + 1 > max_answer_length:
                        continue
                    prelim.append((fi, s, e, float(s_log[s]), float(e_log[e])))
        if version_2:
            prelim.append((null_feature, 0, 0, null_start, null_end))
        prelim.sort(key=lambda p: p[3] + p[4], reverse=True)
        nbest, seen = [], set()
        for fi, s, e, sl, el in prelim:
            if len(nbest) >= n_best_size:
                break
            if s > 0:
                m = meta[fi]
                tok_text = " ".join(m["tokens"][s:e + 1]).replace(" ##", "").replace("##", "")
                tok_text = " ".join(tok_text.strip().split())
                orig_s, orig_e = m["token_to_orig_map"][s], m["token_to_orig_map"][e]
                orig_text = " ".join(ex.doc_tokens[orig_s:orig_e + 1])
                text = get_final_text(tok_text, orig_text, basic)
                if text in seen:
                    continue
                seen.add(text)
            else:
                text = ""
                seen.add(text)
            nbest.append({"text": text, "start_logit": sl, "end_logit": el})
        if version_2 and "" not in seen:
            nbest.append({"text": "", "start_logit": null_start, "end_logit": null_end})
        if not nbest:
            nbest.append({"text": "empty", "start_logit": 0.0, "end_logit": 0.0})
        probs = _softmax([n["start_logit"] + n["end_logit"] for n in nbest])
        for n, p in zip(nbest, probs):
            n["probability"] = p
        best_non_null = next((n for n in nbest if n["text"]), None)
        if not version_2:
            predictions[ex.qas_id] = nbest[0]["text"]
        else:
            diff = score_null - (best_non_null["start_logit"] + best_non_null["end_logit"]) if best_non_null else 1e6
            null_odds[ex.qas_id] = diff
            predictions[ex.qas_id] = "" if diff > null_score_diff_threshold or best_non_null is None \
                else best_non_null["text"]
        all_nbest[ex.qas_id] = nbest
    return predictions, all_nbest, null_odds


# -- datamodule ----------------------------------------------------------------------------------------------------
class SquadDataModule(Task):
    head = "span"
    num_labels = 2
    labels = None
    main_metric = "f1"

    FILES = {1: ("train-v1.1.json", "dev-v1.1.json"), 2: ("train-v2.0.json", "dev-v2.0.json")}
    HUB = {1: "rajpurkar/squad", 2: "rajpurkar/squad_v2"}

    def __init__(self, version: int = 1, data_dir: str = "data/squad", source: str = "auto",
                 train_file: Optional[str] = None, dev_file: Optional[str] = None, max_seq_length: int = 384,
                 doc_stride: int = 128, max_query_length: int = 64, n_best_size: int = 20,
                 max_answer_length: int = 30, null_score_diff_threshold: float = 0.0, batch_size: int = 32,
                 eval_batch_size: int = 64, num_workers: int = 0, static_shapes: bool = False,
                 limit_train_examples: Optional[int] = None, limit_eval_examples: Optional[int] = None,
                 seed: int = 0, **shared):
        super().__init__(max_seq_length, batch_size, eval_batch_size, num_workers, static_shapes, seed, **shared)
        if version not in (1, 2):
            raise SquadDataError(f"data.version={version}: use 1 (SQuAD v1.1) or 2 (SQuAD v2.0)")
        self.version, self.data_dir, self.source = version, Path(data_dir), source
        self.files = {"train": train_file or self.FILES[version][0], "dev": dev_file or self.FILES[version][1]}
        self.doc_stride, self.max_query_length = doc_stride, max_query_length
        self.n_best_size, self.max_answer_length = n_best_size, max_answer_length
        self.null_score_diff_threshold = null_score_diff_threshold
        self.limits = limits_per_split(limit_train_examples, limit_eval_examples)
        self._articles: Dict[str, List[dict]] = {}
        self._examples: Dict[str, List[SquadExample]] = {}
        self._features: Dict[str, tuple] = {}
        self.last_eval: Dict[str, tuple] = {}

    eval_splits = ["dev"]

    def articles(self, split: str) -> List[dict]:
        if split not in self._articles:
            path = self.data_dir / self.files[split]
            if self.source == "hub" or (self.source == "auto" and not path.is_file() and not self.data_dir.is_dir()):
                arts = articles_from_hub(self.HUB[self.version], "train" if split == "train" else "validation")
            else:
                arts = read_json(path)
            self._articles[split] = arts
        return self._articles[split]

    def examples(self, split: str) -> List[SquadExample]:
        if split not in self._examples:
            ex = examples_from_articles(self.articles(split), split == "train", self.version == 2,
                                        str(self.data_dir / self.files[split]))
            if self.limits[split]:
                ex = ex[: self.limits[split]]
            if not ex:
                raise SquadDataError(f"SQuAD {split}: no usable questions in {self.data_dir / self.files[split]}")
            self._examples[split] = ex
        return self._examples[split]

    def featurize(self, split: str):
        if split not in self._features:
            self._features[split] = self.cached_features(split, lambda: convert_examples_to_features(
                self.examples(split), self.tokenizer, self.max_seq_length, self.doc_stride, self.max_query_length,
                is_training=split == "train", progress=self.progress))
        return self._features[split]

    def source_files(self, split: str) -> Optional[List[Path]]:
        path = self.data_dir / self.files[split]
        return [path] if path.is_file() and self.source != "hub" else None

    def features(self, split: str) -> List[dict]:
        return self.featurize(split)[0]

    def test_splits(self) -> List[str]:
        return []  # SQuAD's test sets are hidden

    def dataset_info(self) -> dict:
        return {"name": f"SQuAD v{self.version}.{1 if self.version == 1 else 0}", "type": self.HUB[self.version],
                "language": "en"}

    def checkpoint_info(self) -> dict:
        return {"max_seq_length": self.max_seq_length, "doc_stride": self.doc_stride, "version": self.version,
                "max_query_length": self.max_query_length, "n_best_size": self.n_best_size,
                "max_answer_length": self.max_answer_length,
                "null_score_diff_threshold": self.null_score_diff_threshold}

    def predict(self, split: str, outputs: dict):
        order = np.argsort(outputs["feature_index"])
        starts = [outputs["start_logits"][i] for i in order]
        ends = [outputs["end_logits"][i] for i in order]
        _, meta = self.featurize(split)
        return postprocess(self.examples(split), meta, starts, ends, self.tokenizer, self.n_best_size,
                           self.max_answer_length, self.version == 2, self.null_score_diff_threshold)

    def evaluate(self, split: str, outputs: dict) -> dict:
        preds, nbest, null_odds = self.predict(split, outputs)
        self.last_eval[split] = (preds, nbest, null_odds)
        ids = {e.qas_id for e in self.examples(split)}
        articles = squad_metrics.restrict(self.articles(split), ids)
        if self.version == 1:
            return squad_metrics.evaluate_v1(articles, preds)
        return squad_metrics.evaluate_v2(articles, preds, null_odds)

    def write_predictions(self, split: str, outputs: dict, out_dir: Path, submission: bool) -> Path:
        preds, nbest, null_odds = self.last_eval.get(split) or self.predict(split, outputs)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "nbest_predictions.json", json.dumps(nbest, indent=2))
        if self.version == 2:
            atomic_write_text(out_dir / "null_odds.json", json.dumps(null_odds, indent=2))
        path = out_dir / "predictions.json"
        atomic_write_text(path, json.dumps(preds, indent=2))
        return path


class SpanPredictor(Predictor):
    """Prediction with a span QA head: {"question", "context"} per input -> {"answer", "start", "end", "score"}
    (character offsets into the context; "" and None for no answer, SQuAD 2.0). Long contexts are windowed with the
    run's doc_stride; answers are post-processed as in evaluation (n-best, max answer length, null threshold)."""

    default_max_seq_length = 384
    line_format = "question<TAB>context per line"
    pipeline_tag = "question-answering"
    example_inputs = [{"question": "Who sat on the mat?", "context": "The cat sat on the mat while the dog slept."},
                      {"question": "Where is the Eiffel Tower?", "context": "The Eiffel Tower is in Paris, France."}]

    def from_fields(self, fields: List[str], where: str):
        if len(fields) != 2:
            raise PredictError(f"{where}: a question-answering model takes 'question<TAB>context' per line")
        return {"question": fields[0], "context": fields[1]}

    def text_columns(self, columns: List[str]) -> Optional[List[str]]:
        return ["question", "context"]

    def from_row(self, row: dict, columns: List[str], where: str):
        question, context = super().from_row(row, columns, where)
        return {"question": question, "context": context}

    def check(self, inputs: list) -> None:
        for n, x in enumerate(inputs, 1):
            if not isinstance(x, dict) or not isinstance(x.get("question"), str) or not x["question"].strip() \
                    or not isinstance(x.get("context"), str) or not x["context"].strip():
                raise PredictError(f"input {n}: a question-answering model takes {{'question': ..., 'context': ...}} "
                                   f"per input (two non-empty texts)")

    def predict(self, inputs: list, progress: bool = True) -> List[dict]:
        rt, info = self.runtime, self.runtime.task_info
        articles = [{"paragraphs": [{"context": x["context"], "qas": [{"id": str(i), "question": x["question"]}]}]}
                    for i, x in enumerate(inputs)]
        version_2 = info.get("version") == 2
        examples = examples_from_articles(articles, is_training=False, version_2=version_2)
        feats, meta = convert_examples_to_features(examples, rt.tokenizer, rt.max_seq_length,
                                                   info.get("doc_stride", 128), info.get("max_query_length", 64),
                                                   is_training=False)
        outs = rt.run([{k: f[k] for k in ("input_ids", "token_type_ids")} for f in feats], progress)
        starts = [o["start_logits"][:o["length"]] for o in outs]
        ends = [o["end_logits"][:o["length"]] for o in outs]
        preds, nbest, _ = postprocess(examples, meta, starts, ends, rt.tokenizer, info.get("n_best_size", 20),
                                      info.get("max_answer_length", 30), version_2,
                                      info.get("null_score_diff_threshold", 0.0))
        results = []
        for i, x in enumerate(inputs):
            answer = preds[str(i)]
            top = next((n for n in nbest[str(i)] if n["text"] == answer), {"probability": None})
            start = x["context"].find(answer) if answer else -1
            results.append({"answer": answer, "start": start if start >= 0 else None,
                            "end": start + len(answer) if start >= 0 else None,
                            "score": None if top["probability"] is None else round(float(top["probability"]), 6)})
        return results

    @classmethod
    def onnx_outputs(cls, net) -> List[str]:
        return ["start_logits", "end_logits"]

    @classmethod
    def onnx_output_axes(cls, name: str) -> Dict[int, str]:
        return {0: "batch", 1: "sequence"}
