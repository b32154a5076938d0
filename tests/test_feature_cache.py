"""Fine-tuning features cached on disk (bert_pl.tasks.base.Task.cached_features), skipping test prediction
(data.predict_test=false) and data.limit_eval_examples on test splits, for every task family."""
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from bert_pl.io import tokenization
from bert_pl.tasks import base
from bert_pl.tasks.classification import TextClassificationTask
from bert_pl.tasks.multiple_choice import SwagTask
from bert_pl.tasks.squad import SquadDataModule
from bert_pl.tasks.token_classification import Conll2003Task
from conftest import ROOT, run_cli, shared
from helpers import compose_cfg

CACHE_LOG = "bert_pl.tasks.base"


def write_csv(path: Path, n: int = 24, pairs: bool = True) -> Path:
    header = "idx,sentence1,sentence2,label" if pairs else "idx,sentence1,label"
    rows = [f"{i},first text number {i},second text {i % 5}" if pairs else f"{i},text number {i}" for i in range(n)]
    path.write_text("\n".join([header] + [f"{r},{'pos' if i % 3 else 'neg'}" for i, r in enumerate(rows)]) + "\n")
    return path


def text_task(tok, folder, cache, **kw):
    files = {k: str(folder / f"{k}.csv") for k in ("train", "dev", "test")}
    task = TextClassificationTask(train_file=files["train"], validation_file=files["dev"], test_file=files["test"],
                                  feature_cache=str(cache), **kw)
    task.set_tokenizer(tok)
    task.prepare()
    return task


@pytest.fixture
def csv_folder(tmp_path):
    for split in ("train", "dev", "test"):
        write_csv(tmp_path / f"{split}.csv")
    return tmp_path


def canonical(obj):
    """A value to compare features by: arrays as (dtype, values), objects as (class, attributes)."""
    if isinstance(obj, np.ndarray):
        return str(obj.dtype), obj.tolist()
    if isinstance(obj, dict):
        return {k: canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
        fields = vars(obj) if hasattr(obj, "__dict__") else {s: getattr(obj, s) for s in obj.__slots__}
        return type(obj).__name__, canonical(fields)
    return obj


def features_of(task) -> dict:
    return {split: canonical(task._features[split]) for split in sorted(task._features)}


def cache_lines(caplog, what: str):
    return [r.getMessage() for r in caplog.records if r.name == CACHE_LOG and what in r.getMessage()]


def test_the_second_identical_job_uses_the_cache_and_gets_identical_features(csv_folder, tmp_path, minilm_tokenizer,
                                                                            caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="bert_pl")
    first = text_task(minilm_tokenizer, csv_folder, tmp_path / "cache")
    assert len(cache_lines(caplog, "cached in")) == 3 and not cache_lines(caplog, "from the cache")
    caplog.clear()

    def no_tokenising(*args):
        raise AssertionError("the second job tokenised again")

    monkeypatch.setattr(TextClassificationTask, "_encode", no_tokenising)
    # batch size, seed and workers never change a feature: a sweep over them reuses the cache
    second = text_task(minilm_tokenizer, csv_folder, tmp_path / "cache", batch_size=4, seed=7, num_workers=1)
    assert len(cache_lines(caplog, "from the cache")) == 3
    assert features_of(second) == features_of(first)
    assert second.checkpoint_info()["pairs"] is True  # state set while tokenising comes back with the features


def test_a_changed_file_setting_or_tokenizer_tokenises_again(csv_folder, tmp_path, minilm_tokenizer, minilm_dir,
                                                            caplog):
    caplog.set_level(logging.INFO, logger="bert_pl")
    cache = tmp_path / "cache"
    text_task(minilm_tokenizer, csv_folder, cache)
    train = csv_folder / "train.csv"
    train.write_text(train.read_text().replace("number 3,", "number 8,"))  # same size, other contents
    caplog.clear()
    task = text_task(minilm_tokenizer, csv_folder, cache)
    assert [m.split(" ")[2] for m in cache_lines(caplog, "cached in")] == ["train"]
    assert len(cache_lines(caplog, "from the cache")) == 2
    assert "first text number 8" in minilm_tokenizer.decode(list(task.features("train").ids[:40]))
    for changed in ({"max_seq_length": 16}, {"labels": ["pos", "neg"]}, {"text_columns": ["sentence1"]}):
        caplog.clear()
        text_task(minilm_tokenizer, csv_folder, cache, **changed)
        assert not cache_lines(caplog, "from the cache"), changed
    caplog.clear()
    cased = tokenization.from_vocab_file(minilm_dir / "vocab.txt", lowercase=False)
    text_task(cased, csv_folder, cache)
    assert not cache_lines(caplog, "from the cache")


def test_a_corrupt_or_foreign_cache_entry_is_rebuilt_without_running_it(csv_folder, tmp_path, minilm_tokenizer,
                                                                       caplog):
    caplog.set_level(logging.INFO, logger="bert_pl")
    cache = tmp_path / "cache"
    first = text_task(minilm_tokenizer, csv_folder, cache)
    entries = sorted(cache.glob("*-train-*.pkl"))
    assert len(entries) == 1 and not list(cache.glob("*.tmp"))
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # truncated
    caplog.clear()
    again = text_task(minilm_tokenizer, csv_folder, cache)
    assert len([m for m in cache_lines(caplog, "unreadable")]) == 1 and features_of(again) == features_of(first)

    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "executed",))

    entries[0].write_bytes(pickle.dumps(Payload()))
    caplog.clear()
    text_task(minilm_tokenizer, csv_folder, cache)
    assert not (tmp_path / "executed").exists() and len(cache_lines(caplog, "unreadable")) == 1
    assert len(cache_lines(caplog, "from the cache")) == 2


def test_a_second_job_waits_for_the_entry_the_first_one_builds(csv_folder, tmp_path, minilm_tokenizer, caplog):
    import threading
    import time

    from filelock import FileLock

    caplog.set_level(logging.INFO, logger="bert_pl")
    first = text_task(minilm_tokenizer, csv_folder, tmp_path / "cache")
    path = first.feature_cache_path("train", first.source_files("train"))
    building = FileLock(str(path.with_name(f".{path.name}.lock")))  # as another job holds it while it tokenises
    building.acquire()
    caplog.clear()
    second = []
    job = threading.Thread(target=lambda: second.append(text_task(minilm_tokenizer, csv_folder, tmp_path / "cache")))
    job.start()
    deadline = time.monotonic() + 60
    while not cache_lines(caplog, "another job is building them") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache_lines(caplog, "another job is building them") and not second
    building.release()
    job.join(60)
    assert second and len(cache_lines(caplog, "from the cache")) == 3
    assert features_of(second[0]) == features_of(first)


def test_skipped_row_warnings_are_said_again_from_the_cache(tmp_path, minilm_tokenizer, caplog):
    caplog.set_level(logging.INFO, logger="bert_pl")
    for split in ("train", "dev", "test"):
        write_csv(tmp_path / f"{split}.csv")
    train = tmp_path / "train.csv"
    train.write_text(train.read_text() + "99,,empty first text,pos\n")
    text_task(minilm_tokenizer, tmp_path, tmp_path / "cache", on_bad_row="skip")
    caplog.clear()
    text_task(minilm_tokenizer, tmp_path, tmp_path / "cache", on_bad_row="skip")
    assert cache_lines(caplog, "from the cache")
    assert any("skipped 1 bad row" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_long_tokenisation_logs_rows_rate_and_time_left(csv_folder, tmp_path, minilm_tokenizer, caplog,
                                                      monkeypatch):
    from bert_pl.tasks import classification

    caplog.set_level(logging.INFO, logger="bert_pl")
    monkeypatch.setattr(base, "PROGRESS_EVERY", 0.0)  # a line at every report, as a long run gets every 30 s
    monkeypatch.setattr(classification, "CHUNK", 8)
    text_task(minilm_tokenizer, csv_folder, tmp_path / "cache")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tokenising train")]
    assert [line.split(": ", 1)[1].split(" rows")[0] for line in lines] == ["8", "16", "24"]
    assert all(" of ~24, " in line and " rows/s, ~" in line and line.endswith(" s left") for line in lines), lines


def squad_file(path: Path) -> Path:
    data = json.loads(shared("squad", "dev-v1.1.json").read_text())
    data["data"] = data["data"][:1]
    path.write_text(json.dumps(data))
    return path


def conll_task(tok, cache, **kw):
    folder = shared("conll2003")
    return Conll2003Task(data_dir=str(folder), limit_train_examples=30, limit_eval_examples=10, on_bad_row="skip",
                         feature_cache=str(cache), **kw)


FAMILIES = {
    "squad": lambda tok, folder, cache: SquadDataModule(
        version=1, data_dir=str(folder), source="local", train_file=squad_file(folder / "train.json").name,
        dev_file="train.json", max_seq_length=128, doc_stride=64, limit_train_examples=20, limit_eval_examples=10,
        feature_cache=str(cache)),
    "token_classification": lambda tok, folder, cache: conll_task(tok, cache),
    "multiple_choice": lambda tok, folder, cache: SwagTask(data_dir=str(ROOT / "tests" / "data" / "swag_sample"),
                                                           source="local", feature_cache=str(cache)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_caches_through_the_base(family, tmp_path, minilm_tokenizer, caplog):
    caplog.set_level(logging.INFO, logger="bert_pl")
    tasks = []
    for _ in range(2):
        task = FAMILIES[family](minilm_tokenizer, tmp_path, tmp_path / "cache")
        task.set_tokenizer(minilm_tokenizer)
        task.prepare()
        for split in ["train", *task.eval_splits, *task.test_splits()]:
            task.features(split)
        tasks.append(task)
    splits = len(tasks[0]._features)
    assert len(cache_lines(caplog, "cached in")) == splits and len(cache_lines(caplog, "from the cache")) == splits
    assert features_of(tasks[1]) == features_of(tasks[0])
    assert tasks[1].head_kwargs() == tasks[0].head_kwargs()


def test_predict_test_false_reads_no_test_split(tmp_path, minilm_tokenizer):
    for split in ("train", "dev"):
        write_csv(tmp_path / f"{split}.csv")
    (tmp_path / "test.csv").write_text("idx,sentence1,sentence2\n1,,\n")  # would stop the run if it were read
    task = text_task(minilm_tokenizer, tmp_path, tmp_path / "cache", predict_test=False)
    assert task.test_splits() == [] and "test" not in task._features
    pickle.loads(pickle.dumps(task))  # still pickles (DDP spawn, loader workers)


def test_limit_eval_examples_cuts_the_test_split_of_every_family(csv_folder, tmp_path, minilm_tokenizer):
    task = text_task(minilm_tokenizer, csv_folder, tmp_path / "cache", limit_eval_examples=5)
    assert [len(task.features(s)) for s in ("train", "dev", "test")] == [24, 5, 5]
    assert base.limits_per_split(7, 5) == {"train": 7, "dev": 5, "test": 5}
    conll = conll_task(minilm_tokenizer, tmp_path / "cache", test_file=str(shared("conll2003", "eng.testa")))
    conll.set_tokenizer(minilm_tokenizer)
    conll.prepare()
    assert len(conll.sentences("test")) == 10


def test_finetune_config_reaches_every_task(tmp_path):
    """The shared data keys of conf/finetune.yaml are accepted by every task's constructor."""
    cfg = compose_cfg("finetune", ["task=mrpc", "data.predict_test=false", f"paths.cache_dir={tmp_path}"])
    assert cfg.data.feature_cache == f"{tmp_path}/features"
    task = instantiate(cfg.data)
    assert task.predict_test is False and task.feature_cache == tmp_path / "features" and task.test_splits() == []
    for name in ("squad_v1", "conll2003", "swag", "text_classification", "multiple_choice",
                 "token_classification"):
        cfg = compose_cfg("finetune", [f"task={name}"])
        assert {"feature_cache", "predict_test"} <= set(cfg.data), name


@pytest.mark.slow
def test_finetune_twice_uses_the_cache_and_predict_test_false_writes_no_test_predictions(tiny_pretrained, tmp_path):
    for split in ("train", "dev", "test"):
        write_csv(tmp_path / f"{split}.csv", n=16)
    common = ["finetune.py", "task=text_classification", f"pretrained={tiny_pretrained}",
              f"data.train_file={tmp_path / 'train.csv'}", f"data.validation_file={tmp_path / 'dev.csv'}",
              f"data.test_file={tmp_path / 'test.csv'}", "trainer.max_epochs=1", f"paths.cache_dir={tmp_path}"]
    res = run_cli([*common, "data.limit_eval_examples=3", f"hydra.run.dir={tmp_path / 'a'}"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "cached in" in res.stderr + res.stdout and "not a complete submission" in res.stderr + res.stdout
    assert len((tmp_path / "a" / "predictions_test.jsonl").read_text().splitlines()) == 3
    res = run_cli([*common, "data.limit_eval_examples=3", "data.predict_test=false", f"hydra.run.dir={tmp_path / 'b'}"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert (res.stderr + res.stdout).count("from the cache") == 2  # train and dev; test is not read
    assert not (tmp_path / "b" / "predictions_test.jsonl").exists()
    assert (tmp_path / "b" / "predictions_dev.jsonl").read_text() == (tmp_path / "a" / "predictions_dev.jsonl"
                                                                       ).read_text()
