"""`task=text_classification`: the user's own csv/tsv/json/jsonl/parquet files (or a hub dataset), as users use it.

Every file is written by the test into tmp_path. In-process tests use the real tokenizer (Google's uncased vocab);
the end-to-end tests run the real CLI on `tiny_pretrained` with a few dozen rows and one epoch."""
import csv
import json
import logging
import math
import socket
import time

import numpy as np
import pytest

from bert_pl.errors import UserError
from bert_pl.tasks.base import PaddingCollator, TaskDataError
from bert_pl.tasks.classification import TextClassificationTask
from conftest import run_cli
from helpers import compose_cfg

# -- writing the user's files ---------------------------------------------------------------------------------------
SPECIAL = ['Hello, world, with commas', 'She said "no", then left', "it's 'single' quoted", 'Café naïve façade',
           '日本語のテキスト and English', 'emoji 🙂 inside', 'Ünïcödé, über, straße', '"starts with a quote',
           'ends with a quote"', 'semi;colon | pipe \\ backslash']


def dataset(n=40, columns=("sentence1", "sentence2"), id_column="idx", label=lambda i: 10 if i % 3 else 2):
    """n rows, two classes (2 and 10: numbers, to check numeric order); texts with commas, quotes, non-ASCII."""
    rows = []
    for i in range(n):
        row = {id_column: 100 + i} if id_column else {}
        row[columns[0]] = SPECIAL[i] if i < len(SPECIAL) else f"sentence number {i} is about topic {i % 7}"
        if len(columns) == 2:
            row[columns[1]] = SPECIAL[-1 - i] if i < len(SPECIAL) else f"and its partner, number {i}"
        row["label"] = label(i)
        rows.append(row)
    return rows


def cell(value, sep):
    return sep.join(str(v) for v in value) if isinstance(value, list) else str(value)


def write(path, rows, fmt=None):
    """Write rows (dicts) as the user would: fmt is the extension, or 'json_lines' (JSON lines in a .json file),
    'json_pretty' (an indented JSON array) or 'csv_bom' (a CSV saved by Excel, with a byte-order mark)."""
    fmt = fmt or path.suffix[1:]
    columns = list(rows[0])
    if fmt in ("csv", "csv_bom"):
        with open(path, "w", newline="", encoding="utf-8-sig" if fmt == "csv_bom" else "utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows([cell(r[c], ",") for c in columns] for r in rows)
    elif fmt == "tsv":  # as GLUE: no quoting at all
        lines = ["\t".join(columns)] + ["\t".join(cell(r[c], ",") for c in columns) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif fmt in ("json", "json_pretty"):
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2 if fmt == "json_pretty" else None),
                        encoding="utf-8")
    elif fmt in ("jsonl", "json_lines"):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), str(path))
    else:
        raise AssertionError(fmt)
    return path


def make_task(tokenizer, train, dev, **kwargs):
    task = TextClassificationTask(train_file=str(train), validation_file=str(dev), **kwargs)
    task.set_tokenizer(tokenizer)
    return task


def table(task, split):
    t = task.features(split)
    feats = [t[i] for i in range(len(t))]
    return ([f["input_ids"].tolist() for f in feats], [f["token_type_ids"].tolist() for f in feats],
            [np.asarray(f["labels"]).tolist() if "labels" in f else None for f in feats], list(t.row_ids))


def outputs(logits, order=None):
    """Gathered head outputs as FinetuneModule hands them over: possibly not in row order, with example_index."""
    logits = np.asarray(logits, dtype=np.float32)
    order = np.arange(len(logits)) if order is None else np.asarray(order)
    return {"logits": logits[order], "example_index": order}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- 1. reading -----------------------------------------------------------------------------------------------------
FORMATS = [("csv", "csv"), ("csv", "csv_bom"), ("tsv", "tsv"), ("json", "json"), ("json", "json_pretty"),
           ("json", "json_lines"), ("jsonl", "jsonl"), ("parquet", "parquet")]


def test_every_format_gives_identical_features(tmp_path, minilm_tokenizer):
    rows = dataset()
    results = {}
    for ext, fmt in FORMATS:
        folder = tmp_path / fmt
        folder.mkdir()
        train = write(folder / f"train.{ext}", rows, fmt)
        dev = write(folder / f"dev.{ext}", rows[:12], fmt)
        task = make_task(minilm_tokenizer, train, dev)
        task.prepare()
        assert task.labels == ["2", "10"], fmt  # numbers in numeric order, not "10" < "2"
        results[fmt] = (table(task, "train"), table(task, "dev"), task.features("train").gold)
    reference = results["csv"]
    for fmt, got in results.items():
        assert got == reference, f"{fmt} differs from csv"
    (ids, types, labels, row_ids), _, gold = reference
    assert len(ids) == 40 and row_ids == [str(100 + i) for i in range(40)]  # from the idx column
    assert all(t[0] == 0 and t[-1] == 1 for t in types)  # sentence1/sentence2: a pair
    assert labels == [0 if i % 3 == 0 else 1 for i in range(40)] and gold[:2] == ["2", "10"]
    # the text came through whole: commas, quotes and non-ASCII intact (the BOM did not reach the header)
    decoded = minilm_tokenizer.decode(ids[1])
    assert 'she said " no ", then left' in decoded and "ends with a quote" in decoded
    assert minilm_tokenizer.decode(ids[3], skip_special_tokens=False).startswith("[CLS] cafe naive facade [SEP] unicode, uber")


@pytest.mark.parametrize("columns,given", [(("sentence1", "sentence2"), None), (("premise", "hypothesis"), None),
                                           (("question", "sentence"), None), (("text",), None),
                                           (("sentence",), None), (("review",), ["review"]),
                                           (("claim", "evidence"), ["claim", "evidence"])])
def test_text_columns_found_or_given_and_pairs_get_segment_b(columns, given, tmp_path, minilm_tokenizer):
    rows = dataset(12, columns=columns, id_column=None)
    for r in rows:
        r["notes"] = "ignored column"  # an extra column is not taken for text
    train = write(tmp_path / "train.csv", rows)
    dev = write(tmp_path / "dev.csv", rows[:4])
    task = make_task(minilm_tokenizer, train, dev, text_columns=given)
    task.prepare()
    f = task.features("train")[0]
    ids, types = f["input_ids"].tolist(), f["token_type_ids"].tolist()
    tokens = [minilm_tokenizer.id_to_token(i) for i in ids]
    a_tokens = minilm_tokenizer.encode(rows[0][columns[0]], add_special_tokens=False).tokens
    assert tokens[:len(a_tokens) + 2] == ["[CLS]", *a_tokens, "[SEP]"]
    if len(columns) == 1:
        assert set(types) == {0} and len(ids) == len(a_tokens) + 2
    else:
        b_tokens = minilm_tokenizer.encode(rows[0][columns[1]], add_special_tokens=False).tokens
        assert tokens[len(a_tokens) + 2:] == [*b_tokens, "[SEP]"]
        assert types == [0] * (len(a_tokens) + 2) + [1] * (len(b_tokens) + 1)  # 1 on segment B and its [SEP]
    assert list(task.features("train").row_ids) == [str(i) for i in range(12)]  # no id column: the row number


def test_labels_order_ids_and_a_test_file_without_labels(tmp_path, minilm_tokenizer):
    rows = dataset(20, columns=("text",), id_column="id", label=lambda i: ["neg", "pos", "mixed"][i % 3])
    train = write(tmp_path / "train.jsonl", rows)
    dev = write(tmp_path / "dev.csv", rows[:6])
    test = write(tmp_path / "test.tsv", [{"text": r["text"]} for r in rows[:5]])  # no label, no id column
    task = make_task(minilm_tokenizer, train, dev, test_file=str(test))
    task.prepare()
    assert task.labels == ["mixed", "neg", "pos"] and task.head_kwargs() == {"num_labels": 3,
                                                                               "problem_type": "single_label"}
    assert task.test_splits() == ["test"] and task.main_metric == "acc"
    assert table(task, "dev")[2] == [1, 2, 0, 1, 2, 0]
    assert table(task, "dev")[3] == [str(100 + i) for i in range(6)]
    test_ids, _, test_labels, test_row_ids = table(task, "test")
    assert test_labels == [None] * 5 and test_row_ids == ["0", "1", "2", "3", "4"]
    assert test_ids == table(task, "dev")[0][:5]
    # labels given: their order is the head's order, also for labels absent from train; numbers as in the YAML list
    task = make_task(minilm_tokenizer, train, dev, labels=["pos", "neg", "mixed", "unused"])
    task.prepare()
    assert task.labels == ["pos", "neg", "mixed", "unused"] and task.num_labels == 4
    assert table(task, "dev")[2] == [1, 0, 2, 1, 0, 2]
    # an explicit id column; the numbers sort numerically, with non-numbers after them
    rows = dataset(12, columns=("text",), label=lambda i: ["10", "2", "1", "other"][i % 4])
    for i, r in enumerate(rows):
        r["key"] = f"k{i}"
    train = write(tmp_path / "train2.csv", rows)
    task = make_task(minilm_tokenizer, train, train, id_column="key")
    task.prepare()
    assert task.labels == ["1", "2", "10", "other"]
    assert table(task, "dev")[3] == [f"k{i}" for i in range(12)]
    assert task.results_info() == {"labels": ["1", "2", "10", "other"], "problem_type": "single_label"}


def test_label_order_does_not_depend_on_the_order_seen():
    """Labels come from a set, whose order changes from run to run (hash seed): the sort must be total ("nan" is a
    float, and "1" equals "1.0" as a number), or the label order of the head would change with it."""
    import itertools

    from bert_pl.tasks.classification import _natural_key

    names = ["nan", "10", "2", "1.0", "1", "inf", "neg"]
    orders = {tuple(sorted(p, key=_natural_key)) for p in itertools.permutations(names)}
    assert orders == {("1", "1.0", "2", "10", "inf", "nan", "neg")}


def test_limits_cut_train_dev_and_test(tmp_path, minilm_tokenizer):
    rows = dataset(30, columns=("text",))
    train, dev, test = (write(tmp_path / f"{s}.csv", rows) for s in ("train", "dev", "test"))
    task = make_task(minilm_tokenizer, train, dev, test_file=str(test), limit_train_examples=7,
                     limit_eval_examples=5)
    task.prepare()
    assert [len(task.features(s)) for s in ("train", "dev", "test")] == [7, 5, 5]
    assert table(task, "train")[3] == [str(100 + i) for i in range(7)]
    task = make_task(minilm_tokenizer, train, dev, max_seq_length=8)
    task.prepare()
    assert max(len(x) for x in table(task, "train")[0]) == 8
    batch = PaddingCollator()([task.features("train")[i] for i in range(3)])
    assert batch["input_ids"].shape == (3, 8) and batch["labels"].tolist() == [0, 1, 1]


# -- 2. regression and multi-label; evaluate and write_predictions -------------------------------------------------
def test_single_label_evaluate_and_predictions(tmp_path, minilm_tokenizer):
    rows = dataset(6, columns=("text",), label=lambda i: ["neg", "pos"][i % 2])
    train = write(tmp_path / "train.csv", rows)
    dev = write(tmp_path / "dev.csv", rows[:4])  # gold: neg pos neg pos
    task = make_task(minilm_tokenizer, train, dev)
    task.prepare()
    logits = [[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 1.5]]  # predicts neg pos pos pos: 3 of 4 right
    out = outputs(logits, order=[2, 0, 3, 1])  # as gathered: not in row order
    metrics = task.evaluate("dev", out)
    assert set(metrics) == {"acc", "f1", "acc_and_f1", "mcc"} and metrics["acc"] == pytest.approx(0.75)
    assert metrics["f1"] == pytest.approx(0.8)  # tp=2 fp=1 fn=0
    path = task.write_predictions("dev", out, tmp_path / "out", submission=False)
    assert path == tmp_path / "out" / "predictions_dev.jsonl"
    got = read_jsonl(path)
    assert [r["id"] for r in got] == ["100", "101", "102", "103"]
    assert [r["label"] for r in got] == ["neg", "pos", "pos", "pos"]
    assert [r["gold"] for r in got] == ["neg", "pos", "neg", "pos"]
    p = 1 / (1 + math.exp(-2.0))
    assert got[0]["probabilities"] == pytest.approx({"neg": p, "pos": 1 - p}, abs=1e-6)
    assert got[3]["probabilities"]["pos"] == pytest.approx(1 / (1 + math.exp(-0.5)), abs=1e-6)


def test_regression_labels_metrics_and_scores(tmp_path, minilm_tokenizer):
    rows = dataset(8, columns=("premise", "hypothesis"), label=lambda i: ["0.5", "4", "2.25", "3"][i % 4])
    train = write(tmp_path / "train.tsv", rows)
    dev = write(tmp_path / "dev.tsv", rows[:4])
    task = make_task(minilm_tokenizer, train, dev, label_type="float")
    task.prepare()
    assert task.labels == ["score"] and task.head_kwargs() == {"num_labels": 1, "problem_type": "regression"}
    assert task.main_metric == "pearson" and table(task, "dev")[2] == [0.5, 4.0, 2.25, 3.0]
    batch = PaddingCollator()([task.features("dev")[i] for i in range(4)])
    assert batch["labels"].dtype.is_floating_point and batch["labels"].tolist() == [0.5, 4.0, 2.25, 3.0]
    scores = [1.0, 4.0, 2.0, 3.5]
    out = outputs([[s] for s in scores], order=[3, 1, 0, 2])
    metrics = task.evaluate("dev", out)
    gold = np.array([0.5, 4.0, 2.25, 3.0])
    assert set(metrics) == {"pearson", "spearman", "mse"}
    assert metrics["pearson"] == pytest.approx(np.corrcoef(scores, gold)[0, 1], abs=1e-6)
    assert metrics["spearman"] == pytest.approx(1.0) and metrics["mse"] == pytest.approx(
        np.mean((np.array(scores) - gold) ** 2), abs=1e-6)
    got = read_jsonl(task.write_predictions("dev", out, tmp_path, submission=False))
    assert got == [{"id": str(100 + i), "score": s, "gold": g} for i, (s, g) in enumerate(zip(scores, gold))]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_multi_label_labels_metrics_and_predictions(fmt, tmp_path, minilm_tokenizer):
    sets = [["sports"], ["politics", "sports"], ["tech"], ["sports", "tech"], ["tech", "politics"], ["sports"]]
    # a JSON list per row; in a CSV one comma-separated string (spaces around the commas allowed)
    rows = dataset(6, columns=("text",), label=lambda i: sets[i] if fmt != "csv" else ", ".join(sets[i]))
    train = write(tmp_path / f"train.{fmt}", rows)
    dev = write(tmp_path / f"dev.{fmt}", rows)
    task = make_task(minilm_tokenizer, train, dev, multi_label=True)
    task.prepare()
    assert task.labels == ["politics", "sports", "tech"]
    assert task.head_kwargs() == {"num_labels": 3, "problem_type": "multi_label"} and task.main_metric == "f1_micro"
    hot = [[float(name in s) for name in task.labels] for s in sets]
    assert table(task, "dev")[2] == hot
    batch = PaddingCollator()([task.features("dev")[i] for i in range(6)])
    assert batch["labels"].dtype.is_floating_point and batch["labels"].tolist() == hot
    logits = np.full((6, 3), -2.0)
    for row, column in [(0, 1), (1, 0), (1, 1), (2, 2), (3, 1), (3, 2), (4, 2), (5, 1)]:  # row 4 misses politics
        logits[row, column] = 1.5
    logits[3, 0] = 0.0  # sigmoid(0) = 0.5 is not predicted (> 0.5 is)
    out = outputs(logits, order=[5, 4, 3, 2, 1, 0])
    metrics = task.evaluate("dev", out)
    assert set(metrics) == {"f1_micro", "f1_macro", "exact_match"}
    gold_cells = sum(map(sum, hot))
    tp = gold_cells - 1  # one gold cell (row 4, politics) missed; nothing predicted that is not gold
    assert metrics["f1_micro"] == pytest.approx(2 * tp / (2 * tp + 1))
    assert metrics["exact_match"] == pytest.approx(5 / 6)
    got = read_jsonl(task.write_predictions("dev", out, tmp_path / "out", submission=False))
    assert [r["id"] for r in got] == [str(100 + i) for i in range(6)]
    assert [r["labels"] for r in got] == [["sports"], ["politics", "sports"], ["tech"], ["sports", "tech"],
                                          ["tech"], ["sports"]]
    assert got[4]["gold"] == ["politics", "tech"]
    s, off = 1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(2.0))  # independent sigmoids, not a softmax
    assert got[0]["probabilities"] == pytest.approx({"politics": off, "sports": s, "tech": off}, abs=1e-6)
    assert got[3]["probabilities"]["politics"] == pytest.approx(0.5)
    if fmt != "csv":  # a row may have no label at all: an empty list
        rows[3]["label"] = []
        dev = write(tmp_path / f"dev_empty.{fmt}", rows)
        task = make_task(minilm_tokenizer, train, dev, multi_label=True)
        task.prepare()
        assert table(task, "dev")[2][3] == [0.0, 0.0, 0.0] and task.features("dev").gold[3] == []


# -- 3. bad input: one TaskDataError naming the problem and the file/row/key ---------------------------------------
@pytest.fixture
def good(tmp_path):
    rows = dataset(8, columns=("text",), label=lambda i: ["neg", "pos"][i % 2])
    return write(tmp_path / "good.csv", rows), rows


def error(tokenizer, train, dev, **kwargs) -> str:
    with pytest.raises(TaskDataError) as e:
        task = make_task(tokenizer, train, dev, **kwargs)
        task.prepare()
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_file_and_unknown_extension(tmp_path, minilm_tokenizer, good):
    train, _ = good
    msg = error(minilm_tokenizer, train, tmp_path / "sub" / "dev.csv")
    assert f"data file {tmp_path / 'sub' / 'dev.csv'} not found" in msg and f"looked in {tmp_path / 'sub'}" in msg
    assert "data.validation_file" in msg
    (tmp_path / "dev.txt").write_text("text,label\na,neg\n")
    msg = error(minilm_tokenizer, train, tmp_path / "dev.txt")
    assert "dev.txt: unsupported extension '.txt'; supported: .csv, .tsv, .json, .jsonl, .parquet" in msg
    with pytest.raises(TaskDataError, match="no validation data: pass data.validation_file=PATH"):
        TextClassificationTask(train_file=str(train))
    with pytest.raises(TaskDataError, match="no training data: pass data.train_file=PATH"):
        TextClassificationTask()


def test_missing_text_label_or_id_column_lists_the_columns(tmp_path, minilm_tokenizer, good):
    train, rows = good
    msg = error(minilm_tokenizer, train, train, text_columns=["review"])
    assert "good.csv: no column(s) ['review']; columns found: ['idx', 'text', 'label']" in msg
    assert "data.text_columns" in msg
    body = write(tmp_path / "body.csv", [{"body": r["text"], "label": r["label"]} for r in rows])
    msg = error(minilm_tokenizer, body, body)
    assert "body.csv: no text column found among ['body', 'label']; set data.text_columns=[COLUMN]" in msg
    msg = error(minilm_tokenizer, train, train, label_column="sentiment")
    assert "good.csv: no label column 'sentiment'; columns found: ['idx', 'text', 'label']" in msg
    assert "data.label_column" in msg
    nolabel = write(tmp_path / "nolabel.jsonl", [{"text": r["text"]} for r in rows])
    msg = error(minilm_tokenizer, train, nolabel)
    assert "nolabel.jsonl: no label column 'label'; columns found: ['text']" in msg
    msg = error(minilm_tokenizer, train, train, id_column="uid")
    assert "good.csv: no id column 'uid'; columns found: ['idx', 'text', 'label']" in msg
    with pytest.raises(TaskDataError, match=r"data.text_columns=\['a', 'b', 'c'\]: give one column, or two"):
        TextClassificationTask(train_file=str(train), validation_file=str(train), text_columns=["a", "b", "c"])


def test_dev_label_not_in_train_stops_or_is_skipped_with_a_count(tmp_path, minilm_tokenizer, good, caplog):
    train, rows = good
    dev_rows = [dict(r) for r in rows[:5]]
    dev_rows[2]["label"] = "neutral"
    dev = write(tmp_path / "dev.csv", dev_rows)
    msg = error(minilm_tokenizer, train, dev)
    assert "dev.csv: row 4: label 'neutral' is not among the training labels ['neg', 'pos']" in msg  # line 4
    assert "data.on_bad_row=skip" in msg
    task = make_task(minilm_tokenizer, train, dev, on_bad_row="skip")
    with caplog.at_level(logging.WARNING, logger="bert_pl.tasks.classification"):
        task.prepare()
    assert "skipped 1 bad row(s)" in caplog.text and "row 4: label 'neutral'" in caplog.text
    assert table(task, "dev")[3] == ["100", "101", "103", "104"]  # the other rows keep their ids
    jsonl = write(tmp_path / "dev.jsonl", dev_rows)
    assert "dev.jsonl: row 3: label 'neutral'" in error(minilm_tokenizer, train, jsonl)  # JSON lines: line 3
    with pytest.raises(TaskDataError, match="data.on_bad_row='warn': use skip or error"):
        make_task(minilm_tokenizer, train, dev, on_bad_row="warn")


def test_empty_files(tmp_path, minilm_tokenizer, good):
    train, _ = good
    for name in ("empty.csv", "empty.json", "empty.parquet"):
        (tmp_path / name).write_bytes(b"")
        assert f"{name}: the file is empty" in error(minilm_tokenizer, train, tmp_path / name)
    (tmp_path / "header.csv").write_text("text,label\n")
    assert "header.csv: no usable rows" in error(minilm_tokenizer, train, tmp_path / "header.csv")
    assert "header.csv: no usable label in column 'label'" in error(minilm_tokenizer, tmp_path / "header.csv", train)
    (tmp_path / "header.tsv").write_text("text\n")  # a test file without rows: stop now, not after training
    msg = error(minilm_tokenizer, train, train, test_file=str(tmp_path / "header.tsv"))
    assert "header.tsv: no usable rows; leave data.test_file unset" in msg
    (tmp_path / "array.json").write_text("[]")
    assert "array.json: holds no rows" in error(minilm_tokenizer, train, tmp_path / "array.json")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    assert "blank.jsonl: holds no rows" in error(minilm_tokenizer, train, tmp_path / "blank.jsonl")


def test_bad_values_name_the_file_and_row(tmp_path, minilm_tokenizer, good):
    train, rows = good
    reg = [dict(r, label=str(i / 2)) for i, r in enumerate(rows)]
    reg[5]["label"] = "high"
    reg_file = write(tmp_path / "reg.csv", reg)
    msg = error(minilm_tokenizer, reg_file, reg_file, label_type="float")
    assert "reg.csv: row 7: label 'high' is not a number (data.label_type=float)" in msg
    reg[5]["label"] = "nan"
    write(reg_file, reg)
    assert "reg.csv: row 7: label 'nan' is not a finite number" in error(minilm_tokenizer, reg_file, reg_file,
                                                                           label_type="float")
    blank = [dict(r) for r in rows]
    blank[3]["text"] = "   "
    blank_file = write(tmp_path / "blank.jsonl", blank)
    assert "blank.jsonl: row 4: empty text in column 'text'" in error(minilm_tokenizer, train, blank_file)
    pairs = dataset(4, columns=("sentence1", "sentence2"), label=lambda i: ["a", "b"][i % 2])
    pairs[1]["sentence2"] = None
    pairs_file = write(tmp_path / "pairs.json", pairs)
    assert "pairs.json: row 2: empty text in column 'sentence2'" in error(minilm_tokenizer, pairs_file, pairs_file)
    nolabel = [dict(r) for r in rows]
    nolabel[6]["label"] = ""
    nolabel_file = write(tmp_path / "nolabel.tsv", nolabel)
    assert "nolabel.tsv: row 8: the label is empty" in error(minilm_tokenizer, train, nolabel_file)
    with pytest.raises(TaskDataError, match="data.label_type='int': use str"):
        make_task(minilm_tokenizer, train, train, label_type="int")
    with pytest.raises(TaskDataError, match="multi_label=true takes class labels"):
        make_task(minilm_tokenizer, train, train, label_type="float", multi_label=True)


def test_malformed_files_name_the_file_and_line(tmp_path, minilm_tokenizer, good):
    train, _ = good
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('idx,text,label\n1,"fine, quoted",neg\n2,also fine,pos\n3,an unquoted, comma,neg\n')
    msg = error(minilm_tokenizer, train, ragged)
    assert "ragged.csv: line 4: 4 fields, the header has 3 (idx, text, label); quote fields that contain commas" in msg
    short = tmp_path / "short.tsv"
    short.write_text("text\tlabel\nfine\tneg\nno label here\n")
    assert "short.tsv: line 3: 1 fields, the header has 2" in error(minilm_tokenizer, train, short)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": "neg"}\n{"text": "b", "label": \n')
    assert "broken.jsonl: line 2: not valid JSON" in error(minilm_tokenizer, train, broken)
    latin = tmp_path / "excel.csv"  # saved as Windows-1252 (Excel's default "CSV"), not UTF-8
    latin.write_bytes("text,label\nfine,neg\n\"a, b\",pos\ncaf\xe9 au lait,neg\nok,pos\n".encode("cp1252"))
    assert "excel.csv: line 4: byte 0xe9 is not UTF-8; save the file as UTF-8" in error(minilm_tokenizer, train, latin)
    latin_jsonl = tmp_path / "latin.jsonl"
    latin_jsonl.write_bytes('{"text": "ok", "label": "neg"}\n{"text": "na\xefve", "label": "pos"}\n'.encode("latin-1"))
    assert "latin.jsonl: line 2: byte 0xef is not UTF-8" in error(minilm_tokenizer, train, latin_jsonl)
    notparquet = tmp_path / "bad.parquet"
    notparquet.write_text("text,label\na,neg\n")
    assert "bad.parquet: not a readable parquet file" in error(minilm_tokenizer, train, notparquet)


def test_settings_checked_before_training(tmp_path, minilm_tokenizer, good):
    train, rows = good
    msg = error(minilm_tokenizer, train, train, main_metric="f1_macro")
    assert "data.main_metric" in msg and "'f1_macro'" in msg and "choose one of ['acc', 'f1', 'acc_and_f1', 'mcc']" in msg
    msg = error(minilm_tokenizer, train, train, label_type="float", main_metric="acc")
    assert "choose one of ['pearson', 'spearman', 'mse']" in msg
    one = write(tmp_path / "one.csv", [dict(r, label="pos") for r in rows])
    msg = error(minilm_tokenizer, one, train)
    assert "one.csv: only the label(s) ['pos'] occur; a classifier needs at least two" in msg
    assert "data.labels=[...]" in msg
    task = make_task(minilm_tokenizer, one, one, labels=["neg", "pos"])  # the fix the message names
    task.prepare()
    assert task.labels == ["neg", "pos"]
    with pytest.raises(TaskDataError, match="max_seq_length=4: must be at least 8"):
        make_task(minilm_tokenizer, train, train, max_seq_length=4)


def test_hub_offline_fails_at_once_and_says_to_pass_local_files(monkeypatch):
    from bert_pl.io import hub

    calls = []

    def unreachable(address, timeout=None, *args, **kwargs):
        calls.append((address, timeout))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    task = TextClassificationTask(hub="imdb")  # files may be left out with a hub dataset
    hub.hub_reachable.cache_clear()
    try:
        start = time.monotonic()
        with pytest.raises(UserError) as e:  # HF_HUB_OFFLINE=1 (conftest): decided without touching the network
            task.prepare()
        assert calls == []
        message = str(e.value)
        assert "the hub dataset imdb" in message and "not reachable (offline)" in message
        assert "pass data.train_file=... data.validation_file=... (local csv/tsv/json/jsonl/parquet files)" in message
        # no offline variable set: one connection attempt with a short timeout, then the same error
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
        hub.hub_reachable.cache_clear()
        with pytest.raises(UserError, match="pass data.train_file="):
            TextClassificationTask(hub="imdb").prepare()
        assert len(calls) == 1 and calls[0][0] == ("huggingface.co", 443) and calls[0][1] <= 5
        assert time.monotonic() - start < 15  # (the first call imports `datasets`)
    finally:
        hub.hub_reachable.cache_clear()


def test_config_keys_match_the_task_and_lists_from_the_command_line(tmp_path, minilm_tokenizer):
    from hydra.utils import instantiate

    rows = [{"review": r["sentence1"], "label": r["label"]} for r in dataset(10)]
    train = write(tmp_path / "train.parquet", rows)
    cfg = compose_cfg("finetune", ["task=text_classification", "pretrained=x", f"data.train_file={train}",
                                   f"data.validation_file={train}", "data.text_columns=[review]",
                                   "data.labels=[10,2]"], tmp_path)
    task = instantiate(cfg.data)
    assert isinstance(task, TextClassificationTask)
    task.set_tokenizer(minilm_tokenizer)
    task.prepare()
    assert task.labels == ["10", "2"] and task.text_columns == ["review"] and task.seed == cfg.seed
    assert table(task, "dev")[2][:3] == [1, 0, 0]


# -- 4. end to end through the real CLI ----------------------------------------------------------------------------
def finetune(tiny_pretrained, out, train, dev, *extra):
    return run_cli(["finetune.py", "task=text_classification", f"pretrained={tiny_pretrained}",
                    f"data.train_file={train}", f"data.validation_file={dev}", "trainer.max_epochs=1",
                    "data.batch_size=16", "logger=[]", f"hydra.run.dir={out}", *extra])


def test_cli_single_label_csv_with_a_test_file(tiny_pretrained, tmp_path):
    rows = dataset(32, columns=("text",), id_column="id", label=lambda i: ["negative", "positive"][i % 2])
    train = write(tmp_path / "train.csv", rows)
    dev = write(tmp_path / "dev.csv", rows[:12])
    test = write(tmp_path / "test.csv", [{"text": r["text"]} for r in rows[:9]])  # no labels, no ids
    out = tmp_path / "run"
    res = finetune(tiny_pretrained, out, train, dev, f"data.test_file={test}")
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "text_classification" and results["labels"] == ["negative", "positive"]
    assert results["problem_type"] == "single_label"
    assert results["best"]["metric"] == "acc" and results["best"]["epoch"] == 0
    assert set(results["dev"]["dev"]) == {"acc", "f1", "acc_and_f1", "mcc"}
    assert results["best"]["value"] == pytest.approx(results["history"][0]["dev"]["acc"])
    assert results["dev"]["dev"]["acc"] == pytest.approx(results["best"]["value"])  # the best checkpoint, reloaded
    dev_rows = read_jsonl(out / "predictions_dev.jsonl")
    assert [r["id"] for r in dev_rows] == [str(100 + i) for i in range(12)]
    assert [r["gold"] for r in dev_rows] == [r["label"] for r in rows[:12]]
    assert all(r["label"] in ("negative", "positive") for r in dev_rows)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in dev_rows)
    acc = np.mean([r["label"] == r["gold"] for r in dev_rows])
    assert acc == pytest.approx(results["dev"]["dev"]["acc"])
    test_rows = read_jsonl(out / "predictions_test.jsonl")
    assert [r["id"] for r in test_rows] == [str(i) for i in range(9)] and "gold" not in test_rows[0]
    # the test rows are dev's first 9 texts: the same model gives them the same predictions
    for t, d in zip(test_rows, dev_rows[:9]):
        assert t["probabilities"] == pytest.approx(d["probabilities"], abs=1e-5)
    assert sorted(results["files"]) == sorted([str(out / "predictions_dev.jsonl"), str(out / "predictions_test.jsonl")])


@pytest.mark.parametrize("kind", ["multi_label_jsonl", "regression_tsv"])
def test_cli_multi_label_and_regression(kind, tiny_pretrained, tmp_path):
    if kind == "multi_label_jsonl":
        sets = [["a"], ["b"], ["a", "c"], ["c"], ["b", "c"]]
        rows = dataset(25, label=lambda i: sets[i % 5])
        ext, extra, metrics = "jsonl", ["data.multi_label=true"], {"f1_micro", "f1_macro", "exact_match"}
    else:
        rows = dataset(25, label=lambda i: f"{(i * 7) % 11 / 2:.1f}")
        ext, extra, metrics = "tsv", ["data.label_type=float"], {"pearson", "spearman", "mse"}
    train = write(tmp_path / f"train.{ext}", rows)
    dev = write(tmp_path / f"dev.{ext}", rows[:10])
    out = tmp_path / "run"
    res = finetune(tiny_pretrained, out, train, dev, *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["dev"]["dev"]) == metrics and results["best"]["metric"] in metrics
    got = read_jsonl(out / "predictions_dev.jsonl")
    assert [r["id"] for r in got] == [str(100 + i) for i in range(10)]
    assert not (out / "predictions_test.jsonl").exists()
    if kind == "multi_label_jsonl":
        assert results["labels"] == ["a", "b", "c"] and results["problem_type"] == "multi_label"
        assert [r["gold"] for r in got] == [sets[i % 5] for i in range(10)]
        assert all(set(r["labels"]) <= {"a", "b", "c"} and set(r["probabilities"]) == {"a", "b", "c"} for r in got)
        assert all(set(r["labels"]) == {k for k, p in r["probabilities"].items() if p > 0.5} for r in got)
    else:
        assert results["labels"] == ["score"] and results["problem_type"] == "regression"
        assert [r["gold"] for r in got] == [float(r["label"]) for r in rows[:10]]
        assert all(isinstance(r["score"], float) and math.isfinite(r["score"]) for r in got)


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_pretrained, tmp_path):
    train = write(tmp_path / "train.csv", dataset(12, columns=("text",), label=lambda i: ["x", "y"][i % 2]))
    dev = tmp_path / "dev.csv"
    dev.write_text('idx,text,label\n1,"fine, quoted",x\n2,fine,y\n3,not quoted, a comma,x\n', encoding="utf-8")
    out = tmp_path / "run"
    res = finetune(tiny_pretrained, out, train, dev)
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert lines == [f"error: {dev}: line 4: 4 fields, the header has 3 (idx, text, label); quote fields that "
                     f"contain commas"], res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert not (out / "results.json").exists() and not list(out.glob("predictions_*"))
    assert not (out / "checkpoints").exists()


# -- values of the wrong kind, one number spelled several ways, a column named twice --------------------------------
def test_numbers_lists_or_objects_as_text_name_the_file_row_and_key(tmp_path, minilm_tokenizer, good):
    train, rows = good
    for value, kind in ((12345, "a number (12345)"), (["a", "b"], "a list (['a', 'b'])"), ({"x": 1}, "an object")):
        bad = [dict(r) for r in rows]
        bad[2]["text"] = value
        path = tmp_path / "typed.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in bad))
        assert f"typed.jsonl: row 3: 'text' holds {kind}" in error(minilm_tokenizer, train, path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": i, "label": ["neg", "pos"][i % 2]} for i in range(4)]),
                   str(tmp_path / "ints.parquet"))
    assert "ints.parquet: row 1: 'text' holds a number (0), not a text" in error(
        minilm_tokenizer, tmp_path / "ints.parquet", train)
    listed = [dict(r) for r in rows]
    listed[1]["label"] = ["pos"]
    (tmp_path / "listed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in listed))
    assert "listed.jsonl: row 2: label ['pos'] is a list; a single-label row has one label" in error(
        minilm_tokenizer, train, tmp_path / "listed.jsonl")


def test_spellings_of_one_label_are_one_class_with_a_note(tmp_path, minilm_tokenizer, caplog):
    labels = ["1", "0", "1.0", " 1", "0", "1", "0 ", "1"]
    train = write(tmp_path / "train.csv", [{"text": f"row {i}", "label": x} for i, x in enumerate(labels)])
    dev = write(tmp_path / "dev.csv", [{"text": "a", "label": "1.00"}, {"text": "b", "label": "0"}])
    task = make_task(minilm_tokenizer, train, dev)
    task.prepare()
    assert task.labels == ["0", "1"]
    assert table(task, "train")[2] == [1, 0, 1, 1, 0, 1, 0, 1] and table(task, "dev")[2] == [1, 0]
    assert "labels '1' (4 rows), '1.0' (1 rows) are the same number: read as one class '1'" in caplog.text
    assert "label '1.00' read as the class '1'" in caplog.text
    # spaces inside a label, and multi-label items
    words = write(tmp_path / "words.csv", [{"text": f"t{i}", "label": x} for i, x in
                                           enumerate(["very  good", "bad", " very good", "bad"])])
    task = make_task(minilm_tokenizer, words, words)
    task.prepare()
    assert task.labels == ["bad", "very good"]


def test_a_column_named_twice_is_refused(tmp_path, minilm_tokenizer, good):
    train, _ = good
    (tmp_path / "twice.csv").write_text("text,label,text\nfirst,pos,second\nthird,neg,fourth\n")
    assert "twice.csv: the header names column 'text' twice (columns 1 and 3); rename or remove one" in error(
        minilm_tokenizer, tmp_path / "twice.csv", train)
    (tmp_path / "twice.tsv").write_text("label\ttext\ttext\npos\ta\tb\n")
    assert "names column 'text' twice (columns 2 and 3)" in error(minilm_tokenizer, train, tmp_path / "twice.tsv")
    (tmp_path / "twice.jsonl").write_text('{"text": "a", "label": "pos"}\n{"text": "a", "label": "pos", "text": "b"}\n')
    assert "twice.jsonl: line 2: key 'text' appears twice in one object; rename or remove one" in error(
        minilm_tokenizer, train, tmp_path / "twice.jsonl")
    (tmp_path / "twice.json").write_text('[{"text": "a", "text": "b", "label": "pos"}]')
    assert "twice.json: key 'text' appears twice" in error(minilm_tokenizer, train, tmp_path / "twice.json")
