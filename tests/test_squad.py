import json
import re

import numpy as np
import pytest

from bert_pl.tasks import squad
from bert_pl.tasks import squad_metrics
from bert_pl.tasks.squad import SquadDataError, convert_examples_to_features, examples_from_articles, postprocess
from conftest import run_cli, shared

OFFICIAL_V1 = {"exact_match": 86.20624408703878, "f1": 92.19557978351145}


@pytest.fixture(scope="module")
def dev_articles():
    return squad.read_json(shared("squad", "dev-v1.1.json"))


def test_official_metrics_on_shared_dev(dev_articles):
    preds = json.loads(shared("squad", "bert-ensemble-predictions-v1.1.json").read_text())
    assert squad_metrics.evaluate_v1(dev_articles, preds) == OFFICIAL_V1
    v2 = squad_metrics.evaluate_v2(dev_articles, preds)
    assert v2["exact"] == OFFICIAL_V1["exact_match"] and v2["f1"] == OFFICIAL_V1["f1"]
    assert v2["HasAns_total"] == 10570 and v2["total"] == 10570


def test_evaluate_cli_prints_the_official_output():
    data, preds = shared("squad", "dev-v1.1.json"), shared("squad", "bert-ensemble-predictions-v1.1.json")
    res = run_cli(["-m", "bert_pl.evaluate", "squad", str(data), str(preds)])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == OFFICIAL_V1
    assert res.stdout.strip() == json.dumps(OFFICIAL_V1)


def test_missing_predictions_are_reported(dev_articles, capsys):
    preds = json.loads(shared("squad", "bert-ensemble-predictions-v1.1.json").read_text())
    qid = dev_articles[0]["paragraphs"][0]["qas"][0]["id"]
    del preds[qid]
    result = squad_metrics.evaluate_v1(dev_articles, preds)
    assert f"Unanswered question {qid} will receive score 0." in capsys.readouterr().err
    assert result["exact_match"] < OFFICIAL_V1["exact_match"]


def test_v2_metrics_and_best_threshold():
    articles = [{"title": "t", "paragraphs": [{"context": "x", "qas": [
        {"id": "a", "question": "?", "answers": [{"text": "the Cat", "answer_start": 0}]},
        {"id": "b", "question": "?", "answers": []},
        {"id": "c", "question": "?", "answers": [{"text": "dog", "answer_start": 0}]}]}]}]
    preds = {"a": "cat", "b": "something", "c": ""}
    r = squad_metrics.evaluate_v2(articles, preds, {"a": 0.1, "b": 0.9, "c": 0.5})
    assert r["exact"] == pytest.approx(100 / 3) and r["HasAns_total"] == 2 and r["NoAns_total"] == 1
    assert r["NoAns_exact"] == 0.0
    # abstaining above 0.5 fixes "b" and costs nothing ("c" is wrong anyway): best 2/3 at threshold 0.1
    assert r["best_exact"] == pytest.approx(200 / 3) and r["best_exact_thresh"] == 0.1
    assert squad_metrics.normalize_answer("The  Cat's, a hat!") == "cats hat"


def long_example_articles():
    words = [f"w{i}" for i in range(300)]
    words[150:153] = ["Café", "(1895–1943),", "naïve"]
    context = "  ".join(words[:100]) + "\n" + " ".join(words[100:])
    start = context.index("Café")
    return [{"title": "long", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Which café?", "answers": [{"text": "Café (1895–1943)", "answer_start": start}]}]}]}]


def test_windows_on_a_long_context(minilm_tokenizer):
    examples = examples_from_articles(long_example_articles(), True, False)
    feats, meta = convert_examples_to_features(examples, minilm_tokenizer, max_seq_length=64, doc_stride=16,
                                               max_query_length=8, is_training=True)
    assert len(feats) > 10 and all(len(f["input_ids"]) <= 64 for f in feats)
    # every document token is covered, and has exactly one max-context window
    owners, words = {}, set()
    for m in meta:
        for pos, is_max in m["token_is_max_context"].items():
            words.add(m["token_to_orig_map"][pos])
            owners.setdefault(m["span_start"] + pos - m["doc_offset"], []).append(is_max)
    assert words == set(range(300)) and sorted(owners) == list(range(len(owners)))
    assert all(sum(v) == 1 for v in owners.values())
    assert any(len(v) > 1 for v in owners.values())  # windows overlap
    # the answer is labelled in the windows that hold it whole, [CLS] elsewhere; offsets map back exactly
    holding = [(f, m) for f, m in zip(feats, meta) if f["start_positions"] > 0]
    assert holding and len(holding) < len(feats)
    for f, m in holding:
        s, e = f["start_positions"], f["end_positions"]
        assert " ".join(m["tokens"][s:e + 1]) == "cafe ( 1895 – 1943 )"
        words = examples[0].doc_tokens[m["token_to_orig_map"][s]:m["token_to_orig_map"][e] + 1]
        assert words == ["Café", "(1895–1943),"]
    assert all(f["end_positions"] == 0 for f in feats if f["start_positions"] == 0)


def gold_logits(feats):
    """Logits that put all mass on the labelled span (or [CLS])."""
    starts, ends = [], []
    for f in feats:
        s, e = np.full(len(f["input_ids"]), -10.0), np.full(len(f["input_ids"]), -10.0)
        s[f["start_positions"]] = 10.0
        e[f["end_positions"]] = 10.0
        starts.append(s)
        ends.append(e)
    return starts, ends


def test_gold_spans_round_trip_to_full_score(dev_articles, minilm_tokenizer):
    articles = dev_articles[:3]
    examples = examples_from_articles(articles, True, False)
    feats, meta = convert_examples_to_features(examples, minilm_tokenizer, max_seq_length=128, doc_stride=64,
                                               is_training=True)
    starts, ends = gold_logits(feats)
    preds, nbest, _ = postprocess(examples, meta, starts, ends, minilm_tokenizer)
    assert len(preds) == len(examples) > 300
    # run_squad.py labels whole WordPieces: an answer inside a piece ("8" in "20–18") cannot be a gold span.
    # Those are few; every representable gold span must come back exactly.
    representable = set()
    for f, m in zip(feats, meta):
        if f["start_positions"] > 0:
            span = " ".join(m["tokens"][f["start_positions"]:f["end_positions"] + 1])
            ex = examples[m["example_index"]]
            if span == " ".join(minilm_tokenizer.encode(ex.orig_answer_text, add_special_tokens=False).tokens):
                representable.add(ex.qas_id)
    assert len(representable) > 0.97 * len(examples)
    kept = {q: p for q, p in preds.items() if q in representable}
    result = squad_metrics.evaluate_v1(squad_metrics.restrict(articles, kept), kept)
    assert result == {"exact_match": 100.0, "f1": 100.0}
    first = next(iter(nbest.values()))
    assert first[0]["probability"] > 0.99 and len(first) <= 20


def test_v2_null_answers(minilm_tokenizer):
    arts = long_example_articles()
    arts[0]["paragraphs"][0]["qas"].append({"id": "q2", "question": "Unanswerable?", "answers": [],
                                            "is_impossible": True})
    examples = examples_from_articles(arts, True, True)
    feats, meta = convert_examples_to_features(examples, minilm_tokenizer, max_seq_length=64, doc_stride=16,
                                               max_query_length=8, is_training=True)
    assert all(f["start_positions"] == 0 for f, m in zip(feats, meta) if m["example_index"] == 1)
    starts, ends = gold_logits(feats)
    preds, nbest, null_odds = postprocess(examples, meta, starts, ends, minilm_tokenizer, version_2=True)
    assert preds["q2"] == "" and preds["q1"] == "Café (1895–1943)"
    assert null_odds["q2"] > 0 > null_odds["q1"]
    assert any(n["text"] == "" for n in nbest["q1"])  # the null answer is always among the n-best in v2
    always_null, _, _ = postprocess(examples, meta, starts, ends, minilm_tokenizer, version_2=True,
                                    null_score_diff_threshold=-1e9)
    never_null, _, _ = postprocess(examples, meta, starts, ends, minilm_tokenizer, version_2=True,
                                   null_score_diff_threshold=1e9)
    assert always_null == {"q1": "", "q2": ""}  # the threshold decides
    assert never_null["q1"] == "Café (1895–1943)" and never_null["q2"] != ""


def test_mismatched_answer_start_is_counted_not_fatal(caplog):
    arts = [{"title": "t", "paragraphs": [{"context": "The cat sat on the mat.", "qas": [
        {"id": "ok", "question": "Who?", "answers": [{"text": "cat", "answer_start": 4}]},
        {"id": "bad", "question": "Who?", "answers": [{"text": "dog", "answer_start": 4}]},
        {"id": "out", "question": "Who?", "answers": [{"text": "mat", "answer_start": 400}]}]}]}]
    with caplog.at_level("WARNING"):
        ex = examples_from_articles(arts, True, False, "train.json")
    assert [e.qas_id for e in ex] == ["ok"]
    assert "skipped 2 training question(s)" in caplog.text


def test_dev_answers_missing_from_their_context_are_counted_with_ids(caplog, dev_articles):
    arts = [{"title": "t", "paragraphs": [{"context": "The cat sat on the mat.", "qas": [
        {"id": "ok", "question": "Who?", "answers": [{"text": "the Cat", "answer_start": 0}]},
        {"id": "gone", "question": "Who?", "answers": [{"text": "dog", "answer_start": 4}, {"text": "a bird"}]},
        {"id": "unasked", "question": "Who?", "answers": []}]}]}]
    with caplog.at_level("WARNING"):
        ex = examples_from_articles(arts, False, False, "dev.json")
    assert [e.qas_id for e in ex] == ["ok", "gone", "unasked"]  # kept: the official score counts them
    assert "dev.json: 1 of 3 question(s) have no answer that occurs in their context (ids gone)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        examples_from_articles(dev_articles, False, False, "dev-v1.1.json")
    assert "no answer that occurs" not in caplog.text


def test_malformed_json(tmp_path):
    bad = tmp_path / "train-v1.1.json"
    bad.write_text('{"data": [ {"title": ')
    with pytest.raises(SquadDataError, match=r"train-v1.1.json: malformed JSON at line 1"):
        squad.read_json(bad)
    res = run_cli(["-m", "bert_pl.evaluate", "squad", str(bad), str(bad)])
    assert res.returncode != 0 and "malformed JSON" in res.stderr and "Traceback" not in res.stderr


def test_finetune_squad_end_to_end(tiny_pretrained, tmp_path):
    dev = shared("squad", "dev-v1.1.json")
    out = tmp_path / "run"
    res = run_cli(["finetune.py", "task=squad_v1", f"pretrained={tiny_pretrained}", f"data_dir={dev.parent}",
                   "data.train_file=dev-v1.1.json", "data.limit_train_examples=200", "data.limit_eval_examples=200",
                   "data.max_seq_length=128", "data.doc_stride=64", "data.batch_size=16", "trainer.max_epochs=1",
                   f"hydra.run.dir={out}"])
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["dev"]["dev"]) == {"exact_match", "f1"}
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == 200 and all(isinstance(v, str) for v in preds.values())
    assert (out / "nbest_predictions.json").is_file()
    score = squad_metrics.evaluate_v1(squad_metrics.restrict(squad.read_json(dev), preds), preds)
    assert score["f1"] == pytest.approx(results["dev"]["dev"]["f1"])


def test_finetune_squad_v2_end_to_end(tiny_pretrained, tmp_path):
    data = json.loads(shared("squad", "dev-v1.1.json").read_text())
    data["data"] = data["data"][:2]
    for i, qa in enumerate(q for p in data["data"][0]["paragraphs"] for q in p["qas"]):
        if i % 3 == 0:  # every third question made unanswerable
            qa["answers"], qa["is_impossible"] = [], True
    (tmp_path / "train-v2.0.json").write_text(json.dumps(data))
    (tmp_path / "dev-v2.0.json").write_text(json.dumps(data))
    out = tmp_path / "run"
    res = run_cli(["finetune.py", "task=squad_v2", f"pretrained={tiny_pretrained}", f"data_dir={tmp_path}",
                   "data.limit_train_examples=150", "data.limit_eval_examples=150", "data.max_seq_length=128",
                   "data.doc_stride=64", "data.batch_size=16", "trainer.max_epochs=1", f"hydra.run.dir={out}"])
    assert res.returncode == 0, res.stderr[-3000:]
    dev = json.loads((out / "results.json").read_text())["dev"]["dev"]
    assert {"HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh"} <= set(dev)
    null_odds = json.loads((out / "null_odds.json").read_text())
    assert len(null_odds) == 150
    res = run_cli(["-m", "bert_pl.evaluate", "squad_v2", str(tmp_path / "dev-v2.0.json"), str(out / "predictions.json"),
                   "--na-prob-file", str(out / "null_odds.json")])
    assert "best_f1_thresh" in json.loads(res.stdout)


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["data"][0]["paragraphs"][0].pop("context"), "article 0, paragraph 0: no 'context' field"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start="twelve"),
     "question q0, answer: 'answer_start' is 'twelve'; expected a number"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].pop("question"), "question q0: no 'question' field"),
])
def test_malformed_squad_json_is_one_line_naming_the_place(mutate, message, tmp_path):
    from bert_pl.tasks.squad import SquadDataError, examples_from_articles, read_json

    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "Alice met Bob in Paris.", "qas": [
        {"id": "q0", "question": "Who met Bob?", "answers": [{"text": "Alice", "answer_start": 0}]}]}]}]}
    ok = examples_from_articles(read_json_from(tmp_path, data), True, False, "train.json")
    assert ok[0].start_position == 0
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = "0"  # digits as text are taken
    assert examples_from_articles(read_json_from(tmp_path, data), True, False, "train.json")[0].start_position == 0
    mutate(data)
    with pytest.raises(SquadDataError, match=re.escape(message)):
        examples_from_articles(read_json(write(tmp_path, data)), True, False, "train.json")


def write(tmp_path, data):
    import json

    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    return path


def read_json_from(tmp_path, data):
    from bert_pl.tasks.squad import read_json

    return read_json(write(tmp_path, data))
