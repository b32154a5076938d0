"""`task=token_classification` / `task=conll2003`: reading CoNLL and JSON lines files, first-piece labels, windows
over long sentences, conlleval's scores (against seqeval), the head against transformers, prediction files, and bad
input, in process and through the real CLI on `tiny_pretrained`."""
import json
import logging
import random
import time
import warnings
from collections import Counter

import numpy as np
import pytest
import torch

from bert_pl.tasks import conlleval
from bert_pl.tasks.base import IGNORE_INDEX, PaddingCollator, TaskDataError
from bert_pl.tasks.squad import _check_is_max_context
from bert_pl.tasks.token_classification import (Conll2003Task, TokenClassificationTask, read_conll, window_spans)
from conftest import run_cli, shared

seqeval_metrics = pytest.importorskip("seqeval.metrics")
warnings.filterwarnings("ignore", message=".*seems not to be NE tag.*")


# -- helpers -------------------------------------------------------------------------------------------------------
def write_conll(path, sentences, docstarts=(0,), extra_columns=("NNP", "B-NP"), newline="\n"):
    """sentences: lists of (token, tag); -DOCSTART- before the sentences in `docstarts` (as CoNLL-2003 writes it)."""
    lines = []
    for i, sent in enumerate(sentences):
        if i in docstarts:
            lines += [" ".join(["-DOCSTART-", *["-X-"] * len(extra_columns), "O"]), ""]
        lines += [" ".join([tok, *extra_columns, tag]) for tok, tag in sent] + [""]
    path.write_text(newline.join(lines) + newline, encoding="utf-8")
    return path


def write_jsonl(path, sentences):
    path.write_text("".join(json.dumps({"tokens": [t for t, _ in s], "tags": [g for _, g in s]}) + "\n"
                            for s in sentences), encoding="utf-8")
    return path


def make_task(tok, train, dev, test=None, **kw):
    task = TokenClassificationTask(train_file=str(train), validation_file=str(dev),
                                   test_file=str(test) if test else None, **kw)
    task.set_tokenizer(tok)
    return task


def oracle_outputs(task, split, pick=None):
    """Gathered outputs as FinetuneModule hands them over (one (W, C) array per feature, W its batch's width, in a
    shuffled order), with random logits except at each feature's scored tokens, where they predict
    `pick(sentence index, word index)` (default: the gold tag, or O for a tag outside the label set)."""
    sentences = task.sentences(split)
    gold = lambda ex, w: task.labels.index(t) if (t := sentences[ex].tags[w]) in task.labels else \
        task.labels.index("O")  # noqa: E731
    pick = pick or gold
    feats, logits = task.features(split), []
    for f in feats:
        x = np.random.default_rng(f["feature_index"]).normal(size=(len(f["input_ids"]) + 3, len(task.labels)))
        w = task.windows(split)[f["feature_index"]]
        for pos, word in zip(w.positions, w.words):
            x[pos, pick(w.example_index, word)] = 100
        logits.append(x.astype(np.float32))
    order = np.random.default_rng(0).permutation(len(feats))
    return {"logits": [logits[i] for i in order], "feature_index": np.array([feats[i]["feature_index"] for i in order]),
            "example_index": np.array([feats[i]["example_index"] for i in order])}


SENTS = [[("EU", "B-ORG"), ("rejects", "O"), ("German", "B-MISC"), ("call", "O"), ("to", "O"), ("boycott", "O"),
          ("British", "B-MISC"), ("lamb", "O"), (".", "O")],
         [("Peter", "B-PER"), ("Blackburn", "I-PER")],
         [("BRUSSELS", "B-LOC"), ("1996-08-22", "O")],
         [("Unbelievably", "O"), ("long", "O"), ("Schwarzeneggerization", "B-MISC"), ("of", "O"),
          ("Nottingham", "B-LOC"), ("Forest", "I-LOC")]]


# -- 1. reading ----------------------------------------------------------------------------------------------------
def test_reader_on_the_shared_conll2003_files():
    """Counts of ../shared/data/README.md: sentences, tokens, documents, entities per type (as B- tags). conlleval
    finds 5 MISC entities more in eng.train: its lines 1351, 1367, 1440, 1528 and 1542 tag `X and Y` as
    `B-MISC O I-MISC`, and an I- after O starts an entity."""
    expected = {"eng.train": (14073, 203832, 947, {"PER": 6626, "LOC": 7160, "ORG": 6325, "MISC": 3458}),
                "eng.testa": (3250, 51362, 216, {"PER": 1842, "LOC": 1837, "ORG": 1341, "MISC": 922})}
    for name, (n_sent, n_tok, n_docs, entities) in expected.items():
        sentences, labelled = read_conll(shared("conll2003", name))
        assert labelled and len(sentences) == n_sent and sum(len(s.tokens) for s in sentences) == n_tok
        assert sum(s.doc_start for s in sentences) == n_docs and sentences[0].doc_start
        b_tags = Counter(t[2:] for s in sentences for t in s.tags if t.startswith("B-"))
        assert b_tags == entities
        chunks = Counter(kind for s in sentences for kind, _, _ in conlleval.chunks(s.tags))
        assert chunks == Counter(entities) + Counter({"MISC": 5 if name == "eng.train" else 0})
        orphans = [s.line + i for s in sentences for i, t in enumerate(s.tags)
                   if t.startswith("I-") and (i == 0 or s.tags[i - 1][2:] != t[2:])]
        assert orphans == ([1351, 1367, 1440, 1528, 1542] if name == "eng.train" else [])
    first = read_conll(shared("conll2003", "eng.testa"))[0][0]
    assert first.tokens[:3] == ["CRICKET", "-", "LEICESTERSHIRE"] and first.tags[2] == "B-ORG" and first.line == 3


def test_conll_iob1_bioes_tag_column_and_json_lines_read_alike(tmp_path, minilm_tokenizer):
    """IOB1 (CoNLL-2003's original), BIOES, a middle tag column, CRLF, extra blank lines, and the same sentences as
    JSON lines: tags read as given, the label set sorted, identical features."""
    iob1 = [[("Peter", "I-PER"), ("Paul", "B-PER"), ("and", "O"), ("Mary", "I-PER")],
            [("New", "I-LOC"), ("York", "I-LOC"), ("Times", "I-ORG")]]
    path = write_conll(tmp_path / "iob1.txt", iob1, docstarts=(0, 1), newline="\r\n")
    path.write_text("\n\n" + path.read_text() + "\n\n\n")
    sentences, labelled = read_conll(path)
    assert labelled and [s.tokens for s in sentences] == [[t for t, _ in s] for s in iob1]
    assert [s.doc_start for s in sentences] == [True, True] and sentences[0].line == 5
    assert conlleval.chunks(sentences[0].tags) == [("PER", 0, 0), ("PER", 1, 1), ("PER", 3, 3)]
    assert conlleval.chunks(sentences[1].tags) == [("LOC", 0, 1), ("ORG", 2, 2)]
    # the tag in the middle column, by data.tag_column
    mid = tmp_path / "mid.txt"
    mid.write_text("".join(f"{t} {g} X\n" for t, g in iob1[0]) + "\n", encoding="utf-8")
    assert read_conll(mid, tag_column=1)[0][0].tags == [g for _, g in iob1[0]]
    bioes = [[("Angela", "B-PER"), ("Merkel", "E-PER"), ("in", "O"), ("Berlin", "S-LOC"), ("Bonn", "S-LOC")]]
    write_conll(tmp_path / "bioes.txt", bioes)
    assert conlleval.chunks(read_conll(tmp_path / "bioes.txt")[0][0].tags) == [("PER", 0, 1), ("LOC", 3, 3),
                                                                              ("LOC", 4, 4)]
    conll = make_task(minilm_tokenizer, path, path)
    js = make_task(minilm_tokenizer, write_jsonl(tmp_path / "t.jsonl", iob1), write_jsonl(tmp_path / "d.jsonl", iob1))
    for task in (conll, js):
        task.prepare()
        assert task.labels == ["B-PER", "I-LOC", "I-ORG", "I-PER", "O"]
    for a, b in zip(conll.features("train"), js.features("train")):
        assert all(np.array_equal(a[k], b[k]) for k in a)


# -- 2. features: first pieces, windows ----------------------------------------------------------------------------
def test_first_piece_gets_the_label_the_rest_minus_100(tmp_path, minilm_tokenizer, minilm_dir):
    transformers = pytest.importorskip("transformers")
    path = write_conll(tmp_path / "train.txt", SENTS)
    task = make_task(minilm_tokenizer, path, path)
    task.prepare()
    hf_tok = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))
    for s, f in zip(SENTS, task.features("train")):
        words = [t for t, _ in s]
        enc = hf_tok(words, is_split_into_words=True)
        assert list(f["input_ids"]) == enc["input_ids"]
        first = [i for i, w in enumerate(enc.word_ids()) if w is not None and (i == 0 or enc.word_ids()[i - 1] != w)]
        expected = np.full(len(enc["input_ids"]), IGNORE_INDEX)
        expected[first] = [task.labels.index(g) for _, g in s]
        assert list(f["labels"]) == list(expected)
    long = task.features("train")[3]  # "schwarzeneggerization" is several pieces
    assert (long["labels"] == IGNORE_INDEX).sum() > 2
    batch = PaddingCollator()(task.features("train"))
    assert batch["labels"].shape == batch["input_ids"].shape and (batch["labels"][1, 4:] == IGNORE_INDEX).all()
    assert batch["example_index"].tolist() == [0, 1, 2, 3] and batch["feature_index"].tolist() == [0, 1, 2, 3]
    # a word the tokenizer drops entirely (a zero-width space) becomes [UNK], so that it is still predicted
    odd = write_conll(tmp_path / "odd.txt", [[("a", "O"), ("\u200b", "B-PER"), ("b\u00a0c", "O")]])
    task = make_task(minilm_tokenizer, odd, odd)
    task.prepare()
    f = task.features("dev")[0]
    unk = minilm_tokenizer.token_to_id("[UNK]")
    assert f["input_ids"][2] == unk and f["labels"][2] == task.labels.index("B-PER") and len(f["input_ids"]) == 6
    assert task.sentences("dev")[0].tokens[2] == "b\u00a0c"  # columns split on spaces and tabs only


@pytest.mark.parametrize("max_seq_length,stride", [(16, 5), (12, 10), (10, 100)])
def test_windows_predict_each_word_once_from_its_max_context_window(tmp_path, minilm_tokenizer, max_seq_length,
                                                                    stride):
    rng = random.Random(1)
    vocab = ["the", "cat", "schwarzeneggerization", "in", "Nottingham", "unbelievably", ",", "x"]
    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    sents = [[(rng.choice(vocab), rng.choice(tags)) for _ in range(n)] for n in (3, 40, 17, 1)]
    path = write_conll(tmp_path / "train.txt", sents)
    task = make_task(minilm_tokenizer, path, path, max_seq_length=max_seq_length, doc_stride=stride)
    task.prepare()
    encs = [minilm_tokenizer.encode([t for t, _ in s], is_pretokenized=True, add_special_tokens=False) for s in sents]
    firsts = [[e.word_ids.index(j) for j in range(len(s))] for e, s in zip(encs, sents)]
    n_windows = Counter()
    for f in task.features("train"):  # training: every window, every first piece in it labelled
        assert len(f["input_ids"]) <= max_seq_length and f["input_ids"][0] == 101 and f["input_ids"][-1] == 102
        assert (f["labels"] != IGNORE_INDEX).sum() > 0
        n_windows[f["example_index"]] += 1
    expected = [sum(any(s <= p < s + n for p in first) for s, n in window_spans(len(e.ids), max_seq_length - 2, stride))
                for e, first in zip(encs, firsts)]  # windows holding no first piece teach nothing: dropped
    assert [n_windows[i] for i in range(4)] == expected and expected[1] > 2
    # evaluation: each word exactly once, from the window run_squad.py's rule picks for its first piece
    seen = {}
    for f in task.features("dev"):
        w = task.windows("dev")[f["feature_index"]]
        assert list(np.flatnonzero(f["labels"] != IGNORE_INDEX)) == list(w.positions)
        for word in w.words:
            seen.setdefault((w.example_index, int(word)), []).append(f["feature_index"])
    assert sorted(seen) == [(i, j) for i, s in enumerate(sents) for j in range(len(s))]
    assert all(len(v) == 1 for v in seen.values())
    windows = task.windows("dev")
    for ex, sent in enumerate(sents):
        enc = minilm_tokenizer.encode([t for t, _ in sent], is_pretokenized=True, add_special_tokens=False)
        spans = window_spans(len(enc.ids), max_seq_length - 2, stride)
        for j in range(len(sent)):
            p = enc.word_ids.index(j)  # the word's first piece
            best = next(k for k in range(len(spans)) if _check_is_max_context(spans, k, p))
            w = windows[seen[(ex, j)][0]]
            position = w.positions[list(w.words).index(j)]
            assert p - (position - 1) == spans[best][0]  # the feature predicting it is window `best`
    # scoring puts each prediction back on its word: gold everywhere gives 1.0; O for sentence 1 shows there only
    assert task.evaluate("dev", oracle_outputs(task, "dev"))["f1"] == 1.0
    o = task.labels.index("O")
    wrong = oracle_outputs(task, "dev", pick=lambda ex, w: o if ex == 1 else task.labels.index(sents[ex][w][1]))
    gold = [[g for _, g in sent] for sent in sents]
    ref = conlleval.evaluate(gold, [g if i != 1 else ["O"] * len(g) for i, g in enumerate(gold)])
    got = task.evaluate("dev", wrong)
    assert ref["recall"] < 1 and {k: got[k] for k in ref} == ref


def test_a_50k_token_file_without_blank_lines_is_windowed_quickly(tmp_path, minilm_tokenizer, caplog):
    rng = random.Random(0)
    words = ["Reuters", "said", "the", "market", "in", "London", "rose", "1.5", "percent", "."]
    tags = ["B-ORG", "O", "O", "O", "O", "B-LOC", "O", "O", "O", "O"]
    idx = [rng.randrange(10) for _ in range(50_000)]
    path = tmp_path / "one.txt"
    path.write_text("".join(f"{words[i]} {tags[i]}\n" for i in idx), encoding="utf-8")
    start = time.monotonic()
    task = make_task(minilm_tokenizer, path, path)
    with caplog.at_level(logging.WARNING):
        task.prepare()
    assert len(task.sentences("dev")) == 1 and len(task.sentences("dev")[0].tokens) == 50_000
    assert "is a blank line missing between sentences?" in caplog.text and f"{path}" in caplog.text
    out = oracle_outputs(task, "dev")
    scores = task.evaluate("dev", out)
    assert scores["f1"] == 1.0 and scores["gold_entities"] == sum(tags[i] != "O" for i in idx)
    assert sum(len(w.words) for w in task.windows("dev")) == 50_000
    assert len(task.features("train")) > 700
    assert time.monotonic() - start < 20


# -- 3. conlleval's scores, checked against seqeval ----------------------------------------------------------------
def to_iob1(tags):
    """IOB2 -> IOB1: B- only where an entity directly follows one of the same type."""
    out, prev = [], "O"
    for t in tags:
        out.append("I-" + t[2:] if t.startswith("B-") and prev[2:] != t[2:] else t)
        prev = t
    return out


def seqeval_scores(gold, pred):
    report = seqeval_metrics.classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {k: v for k, v in report.items() if not k.endswith(" avg")}
    return {"precision": seqeval_metrics.precision_score(gold, pred),
            "recall": seqeval_metrics.recall_score(gold, pred),
            "f1": seqeval_metrics.f1_score(gold, pred), "accuracy": seqeval_metrics.accuracy_score(gold, pred),
            **{f"{m}_{t}": v[m if m != "f1" else "f1-score"] for t, v in per_type.items()
               for m in ("precision", "recall", "f1")}}


def assert_same_as_seqeval(gold, pred):
    ours = conlleval.evaluate(gold, pred)
    ref = seqeval_scores(gold, pred)
    assert {k: ours[k] for k in ref} == pytest.approx(ref, abs=1e-12)
    assert set(ref) == {k for k in ours if not k.endswith("_entities")}
    return ours


def test_conlleval_equals_seqeval_on_the_real_dev_tags():
    gold = [s.tags for s in read_conll(shared("conll2003", "eng.testa"))[0]]
    rng = random.Random(0)
    labels = sorted({t for g in gold for t in g})
    noisy = [[rng.choice(labels) if rng.random() < 0.1 else t for t in g] for g in gold]  # incl. I- after O
    ours = assert_same_as_seqeval(gold, noisy)
    assert 0.5 < ours["f1"] < 0.9 and ours["gold_entities"] == 5942
    assert assert_same_as_seqeval(gold, gold)["f1"] == 1.0
    iob1 = [to_iob1(g) for g in gold]
    assert iob1 != gold
    same = assert_same_as_seqeval(iob1, gold)  # the same entities in IOB1 and IOB2
    assert same["f1"] == 1.0 and same["accuracy"] < 1.0
    assert_same_as_seqeval([to_iob1(g) for g in gold], [to_iob1(n) for n in noisy])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # seqeval's report averages over an empty slice at times
@pytest.mark.parametrize("scheme", ["iob2", "iob1", "bioes", "ill_formed"])
def test_conlleval_equals_seqeval_on_random_tags(scheme):
    rng = random.Random(scheme)
    types = ["PER", "LOC", "MISC-X"]  # a hyphen inside a type, as the 2004 script allows

    def sentence(n):
        if scheme == "ill_formed":
            return [rng.choice(["O", "O"] + [f"{p}-{t}" for p in "BIES" for t in types]) for _ in range(n)]
        tags, i = [], 0
        while i < n:
            if rng.random() < 0.5:
                tags.append("O")
                i += 1
                continue
            t, length = rng.choice(types), min(rng.randint(1, 3), n - i)
            if scheme == "bioes":
                tags += [f"S-{t}"] if length == 1 else [f"B-{t}"] + [f"I-{t}"] * (length - 2) + [f"E-{t}"]
            else:
                tags += [f"B-{t}"] + [f"I-{t}"] * (length - 1)
            i += length
        return to_iob1(tags) if scheme == "iob1" else tags

    for _ in range(40):
        gold = [sentence(rng.randint(1, 15)) for _ in range(rng.randint(1, 8))]
        pred = [sentence(len(g)) if rng.random() < 0.6 else list(g) for g in gold]
        assert_same_as_seqeval(gold, pred)


def test_conlleval_rules_by_hand():
    # an I- without a B- starts a chunk; a type change ends one; B- separates; E-/S- close chunks
    assert conlleval.chunks(["I-PER", "I-PER", "I-LOC", "B-LOC", "O", "I-PER"]) == [
        ("PER", 0, 1), ("LOC", 2, 2), ("LOC", 3, 3), ("PER", 5, 5)]
    assert conlleval.chunks(["S-PER", "S-PER", "B-LOC", "E-LOC", "E-LOC", "I-LOC"]) == [
        ("PER", 0, 0), ("PER", 1, 1), ("LOC", 2, 3), ("LOC", 4, 4), ("LOC", 5, 5)]
    # a sentence boundary ends chunks: the same tags split into two sentences give two entities
    assert conlleval.evaluate([["B-PER"], ["I-PER"]], [["B-PER", ]] * 2)["gold_entities"] == 2
    s = conlleval.evaluate([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert (s["precision"], s["recall"], s["accuracy"], s["f1_PER"], s["f1_LOC"]) == (0.5, 0.5, 0.75, 0.0, 1.0)
    assert conlleval.report(conlleval.count([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])) == (
        "processed 4 tokens with 2 phrases; found: 2 phrases; correct: 1.\n"
        "accuracy:  75.00%; precision:  50.00%; recall:  50.00%; FB1:  50.00\n"
        "              LOC: precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n"
        "              PER: precision:   0.00%; recall:   0.00%; FB1:   0.00  1")


# -- 4. the head: transformers parity, export and load -------------------------------------------------------------
PRESETS = {"bert_tiny": (128, 2, 2, 512), "bert_mini": (256, 4, 4, 1024), "bert_small": (512, 4, 8, 2048),
           "bert_medium": (512, 8, 8, 2048), "bert_base": (768, 12, 12, 3072), "bert_large": (1024, 24, 16, 4096)}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_head_matches_transformers_every_preset_padded_and_unpadded(preset):
    transformers = pytest.importorskip("transformers")
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers < 5
        from transformers.modeling_utils import no_init_weights
    from bert_pl.model.bert import BertConfig
    from bert_pl.model.heads import BertForTokenClassification

    h, layers, heads, inter = PRESETS[preset]
    cfg = BertConfig(vocab_size=1000, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, max_position_embeddings=64)
    # no initialisation (bert_large's takes long on 2 cores): both models get the same random weights below
    with torch.device("meta"):
        ours = BertForTokenClassification(cfg, num_labels=9)
    with no_init_weights():
        hf = transformers.BertForTokenClassification(transformers.BertConfig(
            **{k: v for k, v in cfg.to_dict().items() if k != "unpad"}, num_labels=9))
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(v.shape, generator=g) * 0.02 + ("LayerNorm.weight" in k) for k, v in ours.state_dict().items()}
    ours.load_state_dict(sd, strict=True, assign=True)
    hf.load_state_dict(sd, strict=True, assign=True)
    ours.eval(), hf.eval()
    ids = torch.randint(5, 1000, (3, 20), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 13:], mask[2, 5:] = 0, 0
    types = (torch.arange(20) >= 8).long().expand(3, 20) * mask
    labels = torch.randint(0, 9, ids.shape, generator=g).masked_fill(mask == 0, -100)
    real = mask.bool()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
        for unpad in (True, False):  # the dense layers over real tokens only, or over the padded batch
            ours.config.unpad = unpad
            out = ours(ids, types, mask, labels=labels)
            torch.testing.assert_close(out["logits"][real], ref.logits[real], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out["loss"], ref.loss, atol=1e-5, rtol=1e-5)
        ours.config.unpad = True  # a batch without padding: unpad's no-mask path (row 0 alone)
        out = ours(ids[:1], types[:1], mask[:1])
        torch.testing.assert_close(out["logits"][0], ref.logits[0], atol=1e-5, rtol=1e-5)


def test_transformers_token_classification_folder_loads_into_ours(tiny_pretrained, tmp_path):
    transformers = pytest.importorskip("transformers")
    from bert_pl.io import checkpoints
    from bert_pl.model.heads import BertForTokenClassification

    base = checkpoints.resolve(tiny_pretrained)
    labels = ["B-LOC", "B-PER", "I-PER", "O"]
    hf_cfg = transformers.BertConfig(**{k: v for k, v in base.config.to_dict().items() if k != "unpad"},
                                     num_labels=4, id2label=dict(enumerate(labels)))
    torch.manual_seed(0)
    hf = transformers.BertForTokenClassification(hf_cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    ckpt = checkpoints.resolve(tmp_path / "hf")
    assert ckpt.head == "token_classification" and ckpt.info["labels"] == labels
    ours = BertForTokenClassification(ckpt.config, num_labels=4).eval()
    missing, unexpected = ours.load_state_dict(ckpt.state_dict, strict=False)
    assert not missing and not unexpected
    ids = torch.randint(5, 1000, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)["logits"], hf(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


# -- 5. bad input --------------------------------------------------------------------------------------------------
def error_of(fn) -> str:
    with pytest.raises(TaskDataError) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_bad_input_is_one_line_naming_file_line_and_fix(tmp_path, minilm_tokenizer, caplog):
    good = write_conll(tmp_path / "train.txt", SENTS)
    prep = lambda *a, **kw: make_task(minilm_tokenizer, *a, **kw).prepare()  # noqa: E731
    # a line with the wrong number of columns
    bad = tmp_path / "cols.txt"
    bad.write_text("EU NNP B-ORG\nrejects VBZ O\n\nGerman JJ\n", encoding="utf-8")
    assert error_of(lambda: prep(good, bad)) == (
        f"{bad}: line 4: 2 columns, but the file's first token line (line 1) has 3; give every token line the same "
        f"whitespace-separated columns (token first, tag last) and a blank line between sentences")
    # a dev tag not seen in training: named; skip trains it as O, with a count, and keeps it gold for scoring
    dev = write_conll(tmp_path / "dev.txt", [[("Paris", "B-CITY"), ("is", "O")], [("EU", "B-ORG")]])
    msg = error_of(lambda: prep(good, dev))
    assert msg.startswith(f"{dev}: line 3: tag 'B-CITY' does not occur in the training data (tags: B-LOC, B-MISC,")
    assert msg.endswith("set data.on_bad_row=skip to train on it as O (it stays gold when scoring)")
    task = make_task(minilm_tokenizer, good, dev, on_bad_row="skip")
    with caplog.at_level(logging.WARNING):
        task.prepare()
    assert "1 tag(s) not among the training tags" in caplog.text and "B-CITY" in caplog.text
    assert task.features("dev")[0]["labels"][1] == task.labels.index("O")
    assert task.evaluate("dev", oracle_outputs(task, "dev"))["recall"] == 0.5  # B-CITY is missed, not dropped
    # JSON lines: an empty sentence, a length mismatch, a missing field; skip counts and drops them
    js = tmp_path / "bad.jsonl"
    rows = [{"tokens": ["EU"], "tags": ["B-ORG"]}, {"tokens": [], "tags": []}, {"tokens": ["a", "b"], "tags": ["O"]},
            {"words": ["a"]}]
    js.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert error_of(lambda: prep(good, js)) == (f"{js}: line 2: an empty sentence ('tokens' is []); fix the sentence, "
                                                f"or set data.on_bad_row=skip to skip such sentences")
    js.write_text("".join(json.dumps(r) + "\n" for r in rows[:1] + rows[2:]), encoding="utf-8")
    assert error_of(lambda: prep(good, js)).startswith(f"{js}: line 2: 2 tokens but 1 tags; fix the sentence")
    task = make_task(minilm_tokenizer, good, js, on_bad_row="skip")
    task.prepare()
    assert len(task.sentences("dev")) == 1
    # missing files, a file of tokens only for training, a tag column that does not exist, an unknown setting
    nope = tmp_path / "nope.txt"
    assert error_of(lambda: prep(good, nope)).startswith(f"data file {nope} not found")
    one = tmp_path / "one.txt"
    one.write_text("EU\nrejects\n", encoding="utf-8")
    assert error_of(lambda: prep(one, good)).startswith(f"{one}: line 1: one column, no tags")
    assert "data.tag_column=5 does not fit its 4 columns" in error_of(lambda: prep(good, good, tag_column=5))
    assert error_of(lambda: make_task(minilm_tokenizer, good, good, on_bad_row="drop")) == (
        "data.on_bad_row='drop': use skip or error")
    assert error_of(lambda: Conll2003Task(data_dir=str(tmp_path / "none"))).startswith(f"data_dir={tmp_path / 'none'}:")


def test_prediction_files_score_as_reported_and_keep_the_layout(tmp_path, minilm_tokenizer):
    """Noisy predictions: the dev file, read back, gives seqeval the F1 `evaluate` reports; documents, sentences and
    tokens are where the input had them; an unlabelled JSON test file gets `token predicted` lines."""
    rng = random.Random(3)
    path = write_conll(tmp_path / "dev.txt", SENTS * 3, docstarts=(0, 5, 6))
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"tokens": ["New York", "rises"]}) + "\n" + json.dumps({"tokens": ["EU"]}) + "\n")
    task = make_task(minilm_tokenizer, path, path, test, max_seq_length=10, doc_stride=3)
    task.prepare()
    noisy = lambda ex, w: rng.randrange(len(task.labels)) if rng.random() < 0.4 else \
        task.labels.index(task.sentences("dev")[ex].tags[w])  # noqa: E731
    out = oracle_outputs(task, "dev", pick=noisy)
    scores = task.evaluate("dev", out)
    assert 0.2 < scores["f1"] < 0.95
    written = task.write_predictions("dev", out, tmp_path / "out", submission=False)
    assert written == tmp_path / "out" / "predictions_dev.txt"
    text = written.read_text(encoding="utf-8")
    assert text.startswith("-DOCSTART- O O\n\nEU B-ORG ") and text.count("-DOCSTART- O O\n\n") == 3
    sentences, docs = read_predictions(written)
    assert [[w[0] for w in s] for s in sentences] == [[t for t, _ in s] for s in SENTS * 3] and docs == 3
    gold, pred = [[w[1] for w in s] for s in sentences], [[w[2] for w in s] for s in sentences]
    assert seqeval_metrics.f1_score(gold, pred) == pytest.approx(scores["f1"], abs=1e-12)
    assert seqeval_metrics.accuracy_score(gold, pred) == pytest.approx(scores["accuracy"], abs=1e-12)
    assert conlleval.read_file(written).correct_chunks == scores["correct_entities"]
    test_out = oracle_outputs(task, "test", pick=lambda ex, w: task.labels.index("B-LOC"))
    assert task.write_predictions("test", test_out, tmp_path / "out", submission=True).read_text() == (
        "New_York B-LOC\nrises B-LOC\n\nEU B-LOC\n\n")
    assert "test" not in task.results_info()  # nothing to score without tags


# -- 6. end to end through the real CLI ----------------------------------------------------------------------------
def conll2003_subset(folder, n_train=40, n_dev=24, n_test=16):
    """A data_dir like the original distribution: the first sentences of the shared train and dev files (-DOCSTART-
    blocks kept), and the dev file's next ones as eng.testb."""
    def blocks(name, skip, n):
        out, count = [], 0
        for block in shared("conll2003", name).read_text(encoding="utf-8").strip().split("\n\n"):
            is_sentence = not block.startswith("-DOCSTART-")
            if count >= skip:
                out.append(block)
            count += is_sentence
            if count >= skip + n:
                break
        return "\n\n".join(out) + "\n\n"

    folder.mkdir()
    (folder / "eng.train").write_text(blocks("eng.train", 0, n_train), encoding="utf-8")
    (folder / "eng.testa").write_text(blocks("eng.testa", 0, n_dev), encoding="utf-8")
    (folder / "eng.testb").write_text(blocks("eng.testa", n_dev, n_test), encoding="utf-8")
    return folder


def read_predictions(path):
    """Sentences of (token, gold, predicted) from a predictions file, -DOCSTART- lines counted apart."""
    sentences, cur, docs = [], [], 0
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            if cur:
                sentences.append(cur)
            cur = []
        elif line.startswith("-DOCSTART-"):
            docs += 1
            assert line == "-DOCSTART- O O"
        else:
            cur.append(line.split(" "))
    return sentences, docs


def test_cli_conll2003_end_to_end_then_export_to_transformers(tiny_pretrained, tmp_path):
    transformers = pytest.importorskip("transformers")
    data = conll2003_subset(tmp_path / "conll")
    out = tmp_path / "run"
    res = run_cli(["finetune.py", "task=conll2003", f"pretrained={tiny_pretrained}", f"data_dir={data}",
                   "trainer.max_epochs=1", "data.batch_size=8", "data.max_seq_length=24", "data.doc_stride=8",
                   "data.on_bad_row=skip", "logger=[]", f"hydra.run.dir={out}"])
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "conll2003" and results["best"]["metric"] == "f1" and results["best"]["epoch"] == 0
    assert set(results["labels"]) <= {f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "ORG", "MISC")} | {"O"}
    dev = results["dev"]["dev"]
    assert {"precision", "recall", "f1", "accuracy", "f1_PER", "recall_LOC"} <= set(dev)
    assert dev["f1"] == pytest.approx(results["best"]["value"])
    assert sorted(results["files"]) == [str(out / "predictions_dev.txt"), str(out / "predictions_test.txt")]
    # the prediction file: every dev sentence and word in order, -DOCSTART- kept; seqeval on it gives our F1
    sentences, docs = read_predictions(out / "predictions_dev.txt")
    source = read_conll(data / "eng.testa")[0]
    assert [[w[0] for w in s] for s in sentences] == [s.tokens for s in source]
    assert [[w[1] for w in s] for s in sentences] == [s.tags for s in source]
    assert docs == sum(s.doc_start for s in source) and all(len(w) == 3 for s in sentences for w in s)
    gold, pred = [[w[1] for w in s] for s in sentences], [[w[2] for w in s] for s in sentences]
    assert seqeval_metrics.f1_score(gold, pred) == pytest.approx(dev["f1"], abs=1e-12)
    assert seqeval_metrics.accuracy_score(gold, pred) == pytest.approx(dev["accuracy"], abs=1e-12)
    assert conlleval.evaluate(gold, pred)["f1"] == dev["f1"]
    file_counts = conlleval.read_file(out / "predictions_dev.txt")  # as conlleval reads it
    assert file_counts.correct_chunks == dev["correct_entities"] and file_counts.gold_chunks == dev["gold_entities"]
    test_sents, _ = read_predictions(out / "predictions_test.txt")
    assert len(test_sents) == 16 and results["test"]["test"]["f1"] == pytest.approx(
        seqeval_metrics.f1_score([[w[1] for w in s] for s in test_sents], [[w[2] for w in s] for s in test_sents]))
    # the fine-tuned checkpoint exports to a folder transformers loads with no missing/unexpected keys
    ckpt = results["best"]["checkpoint"]
    res = run_cli(["-m", "bert_pl.export", ckpt, str(tmp_path / "hf")])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "token_classification" in res.stdout
    hf, info = transformers.BertForTokenClassification.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert [hf.config.id2label[i] for i in range(len(results["labels"]))] == results["labels"]
    from bert_pl.io import checkpoints
    from bert_pl.model.heads import BertForTokenClassification

    ck = checkpoints.resolve(ckpt)
    assert ck.head == "token_classification" and ck.info["labels"] == results["labels"]
    assert ck.info["task"] == {"max_seq_length": 24, "doc_stride": 8}
    ours = BertForTokenClassification(ck.config, num_labels=len(results["labels"])).eval()
    ours.load_state_dict(ck.state_dict, strict=True)
    ids = torch.randint(5, 1000, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)["logits"], hf.eval()(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_pretrained, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", SENTS)
    dev = write_conll(tmp_path / "dev.conll", [[("Paris", "B-CITY"), ("is", "O")]], docstarts=())
    out = tmp_path / "run"
    res = run_cli(["finetune.py", "task=token_classification", f"pretrained={tiny_pretrained}",
                   f"data.train_file={train}", f"data.validation_file={dev}", "logger=[]", f"hydra.run.dir={out}"])
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {dev}: line 1: tag 'B-CITY' does not occur in the "
                                                   f"training data"), res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert not (out / "results.json").exists() and not (out / "checkpoints").exists()
