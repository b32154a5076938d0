import csv
import json

import numpy as np
import pytest

from bert_pl.tasks import glue
from bert_pl.tasks import metrics
from bert_pl.tasks.glue import GlueDataError, GlueDataModule, get_task, read_tsv
from conftest import run_cli, shared


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn_and_scipy(seed):
    sk = pytest.importorskip("sklearn.metrics")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    assert metrics.accuracy(p, y) == pytest.approx(sk.accuracy_score(y, p), abs=1e-12)
    assert metrics.f1_binary(p, y) == pytest.approx(sk.f1_score(y, p), abs=1e-12)
    assert metrics.matthews_corrcoef(p, y) == pytest.approx(sk.matthews_corrcoef(y, p), abs=1e-12)
    y3, p3 = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    assert metrics.matthews_corrcoef(p3, y3) == pytest.approx(sk.matthews_corrcoef(y3, p3), abs=1e-12)
    a, b = rng.uniform(0, 5, 200), rng.uniform(0, 5, 200)
    b[:50] = np.round(b[:50])  # ties for the rank correlation
    assert metrics.pearson(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-12)
    assert metrics.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert metrics.matthews_corrcoef(np.ones(10), y[:10]) == 0.0  # undefined -> 0, as scikit-learn


@pytest.mark.parametrize("task,n_train,n_dev,n_test", [("CoLA", 8551, 1043, 1063), ("MRPC", 3668, 408, 1725),
                                                       ("SST-2", 67349, 872, 1821), ("STS-B", 5749, 1500, 1379)])
def test_shared_glue_files_read_completely(task, n_train, n_dev, n_test):
    folder = shared("glue", task)
    spec = get_task(task)
    train = read_tsv(folder / "train.tsv", spec, "train", "error")
    dev = read_tsv(folder / "dev.tsv", spec, "dev", "error")
    test = read_tsv(folder / "test.tsv", spec, "test", "error")
    assert (len(train), len(dev), len(test)) == (n_train, n_dev, n_test)
    assert test[0].guid == "0" and test[0].label is None
    assert all(len(e.texts) == len(spec.text_columns) for e in train[:100])
    if task == "MRPC":  # BOM stripped from the header; quotes inside sentences kept as text
        assert any('"' in t for e in train for t in e.texts)
    if task == "STS-B":
        assert 0.0 <= float(dev[0].label) <= 5.0


SAMPLES = {  # faithful few-row copies of GLUE's original TSV layouts
    "QQP": {"train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                         "1\t1\t2\tHow do I learn?\tHow can I learn?\t1\n2\t3\t4\tWhat is \"it\"?\tWho?\t0\n",
            "dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n7\t5\t6\tA?\tB?\t0\n",
            "test.tsv": "id\tquestion1\tquestion2\n0\tA?\tB?\n1\tC?\tD?\n"},
    "MNLI": {"train.tsv": "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\t"
                          "gold_label\n"
                          "0\t1\t1e\tgov\tx\tx\tx\tx\tIt rains.\tIt is wet.\tentailment\tentailment\n",
             "dev_matched.tsv": "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\t"
                                "label2\tlabel3\tlabel4\tlabel5\tgold_label\n"
                                "0\t1\t1n\tgov\tx\tx\tx\tx\tA.\tB.\tneutral\tneutral\tneutral\tneutral\tneutral\t"
                                "neutral\n",
             "dev_mismatched.tsv": "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\t"
                                   "label2\tlabel3\tlabel4\tlabel5\tgold_label\n"
                                   "0\t1\t1c\tfic\tx\tx\tx\tx\tC.\tD.\tcontradiction\tcontradiction\tneutral\t"
                                   "contradiction\tcontradiction\tcontradiction\n",
             "test_matched.tsv": "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\n"
                                 "0\t1\t1\tgov\tx\tx\tx\tx\tE.\tF.\n",
             "test_mismatched.tsv": "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\n"
                                    "0\t1\t1\tfic\tx\tx\tx\tx\tG.\tH.\n"},
    "QNLI": {"train.tsv": "index\tquestion\tsentence\tlabel\n0\tWho?\tHim.\tentailment\n1\tWhy?\tNo.\tnot_entailment\n",
             "dev.tsv": "index\tquestion\tsentence\tlabel\n0\tWhen?\tNow.\tentailment\n",
             "test.tsv": "index\tquestion\tsentence\n0\tWhere?\tHere.\n"},
    "RTE": {"train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA b.\tA.\tentailment\n",
            "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tC d.\tE.\tnot_entailment\n",
            "test.tsv": "index\tsentence1\tsentence2\n0\tF.\tG.\n"},
    "WNLI": {"train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tI saw it.\tIt was seen.\t1\n",
             "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\t0\n",
             "test.tsv": "index\tsentence1\tsentence2\n0\tC.\tD.\n"},
    "diagnostic": {"diagnostic.tsv": "index\tsentence1\tsentence2\n0\tThe cat sat.\tA cat sat.\n"},
}


@pytest.fixture
def glue_dir(tmp_path):
    for folder, files in SAMPLES.items():
        (tmp_path / folder).mkdir()
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("task", ["qqp", "mnli", "qnli", "rte", "wnli"])
def test_every_other_task_reads_its_layout(task, glue_dir, minilm_tokenizer):
    dm = GlueDataModule(task, data_dir=str(glue_dir), source="local", on_bad_row="error")
    dm.set_tokenizer(minilm_tokenizer)
    train = dm.read("train")
    assert train and all(e.label in dm.task.labels for e in train)
    for split in dm.eval_splits:
        assert dm.read(split)
    for split in dm.test_splits():
        assert dm.read(split)[0].label is None
    if task == "mnli":
        assert dm.eval_splits == ["dev_matched", "dev_mismatched"]
        assert set(dm.test_splits()) == {"test_matched", "test_mismatched", "ax"}  # AX predicted by MNLI
        assert dm.read("dev_mismatched")[0].label == "contradiction"
    if task == "qqp":
        assert dm.read("train")[1].texts == ('What is "it"?', "Who?")
        assert [e.guid for e in dm.read("test")] == ["0", "1"]
    feats = dm.features("train")
    assert feats[0]["input_ids"][0] == minilm_tokenizer.token_to_id("[CLS]")
    assert len(feats) == len(train)


def test_pair_truncation_trims_the_longer_segment(minilm_tokenizer, glue_dir):
    dm = GlueDataModule("rte", data_dir=str(glue_dir), max_seq_length=16)
    dm.set_tokenizer(minilm_tokenizer)
    enc = dm.tokenizer.encode("one two three four five six seven eight nine ten eleven twelve", "short one")
    assert len(enc.ids) == 16
    assert enc.tokens[-3:] == ["short", "one", "[SEP]"]  # the short segment is kept whole


def test_bad_rows_skip_with_count_or_stop(tmp_path, caplog):
    folder = tmp_path / "RTE"
    folder.mkdir()
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n"
                                      "1\tonly two\n2\tC.\tD.\tmaybe\n3\tE.\tF.\tnot_entailment\n")
    spec = get_task("rte")
    with caplog.at_level("WARNING"):
        rows = read_tsv(folder / "train.tsv", spec, "train", "skip")
    assert len(rows) == 2
    assert "skipped 2 malformed row(s)" in caplog.text and "train.tsv:3: 2 columns, expected 4" in caplog.text
    with pytest.raises(GlueDataError, match=r"train.tsv:3: 2 columns, expected 4.*on_bad_row=skip"):
        read_tsv(folder / "train.tsv", spec, "train", "error")
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tmaybe\n")
    with pytest.raises(GlueDataError, match=r"label 'maybe' is not one of \['entailment', 'not_entailment'\]"):
        read_tsv(folder / "train.tsv", spec, "train", "error")


def test_unknown_task_and_missing_file(tmp_path):
    with pytest.raises(GlueDataError, match="valid tasks: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, ax"):
        get_task("squad3")
    (tmp_path / "CoLA").mkdir()
    dm = GlueDataModule("cola", data_dir=str(tmp_path), source="local")
    with pytest.raises(GlueDataError, match=r"missing train.tsv; looked for .*CoLA/train.tsv"):
        dm.read("train")
    with pytest.raises(GlueDataError, match="predicted with the MNLI model"):
        GlueDataModule("ax")
    for task in ("cola", "mrpc"):  # headerless and with a header: a 0-byte file is named, not an IndexError
        folder = tmp_path / get_task(task).folder
        folder.mkdir(exist_ok=True)
        (folder / "train.tsv").write_bytes(b"")
        with pytest.raises(GlueDataError, match=r"train.tsv: the file is empty; expected GLUE's"):
            GlueDataModule(task, data_dir=str(tmp_path), source="local").read("train")


def test_offline_without_local_folder_says_what_to_pass(tmp_path):
    dm = GlueDataModule("sst2", data_dir=str(tmp_path))
    with pytest.raises(GlueDataError, match="hub is offline; pass data_dir="):
        dm.read("train")


def test_submission_file_names_and_labels(glue_dir, minilm_tokenizer, tmp_path):
    dm = GlueDataModule("mnli", data_dir=str(glue_dir), source="local")
    dm.set_tokenizer(minilm_tokenizer)
    n = len(dm.read("ax"))
    logits = np.zeros((n, 3))
    logits[:, 1] = 1.0
    out = dm.write_predictions("ax", {"logits": logits, "example_index": np.arange(n)}, tmp_path, submission=True)
    assert out.name == "AX.tsv" and out.parent.name == "submission"
    assert len((tmp_path / "predictions_ax.jsonl").read_text().splitlines()) == n
    assert out.read_text().splitlines()[:2] == ["index\tprediction", "0\tentailment"]
    names = {t.name: [v[1] for v in t.test.values()] for t in glue.TASKS.values()}
    assert names["mnli"] == ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"] and names["stsb"] == ["STS-B.tsv"]


def test_finetune_mrpc_end_to_end(tiny_pretrained, tmp_path):
    glue_dir = shared("glue")
    out = tmp_path / "run"
    res = run_cli(["finetune.py", "task=mrpc", f"pretrained={tiny_pretrained}", f"data_dir={glue_dir}",
                   "data.limit_train_examples=64", "data.limit_eval_examples=64", "data.batch_size=16",
                   "trainer.max_epochs=2", f"hydra.run.dir={out}", "optimizer.lr=1e-4"])
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [h["epoch"] for h in results["history"]] == [0, 1]
    assert {"acc", "f1"} <= set(results["dev"]["dev"]) and results["best"]["metric"] == "acc_and_f1"
    assert results["labels"] == ["0", "1"]
    assert results["best"]["value"] == max(h["main"] for h in results["history"])
    rows = list(csv.reader(open(out / "submission" / "MRPC.tsv"), delimiter="\t"))
    assert rows[0] == ["index", "prediction"] and len(rows) == 1 + 64  # data.limit_eval_examples cuts test too
    assert {r[1] for r in rows[1:]} <= {"0", "1"} and rows[1][0] == "0"
    dev = [json.loads(line) for line in open(out / "predictions_dev.jsonl")]
    assert len(dev) == 64 and [r["id"] for r in dev] == [str(i) for i in range(64)]
    assert all(r["label"] in ("0", "1") and abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in dev)


def test_glue_grid_sweep_prints_summary(tiny_pretrained, tmp_path):
    glue_dir = shared("glue")
    res = run_cli(["finetune.py", "-m", "task=stsb", f"pretrained={tiny_pretrained}", f"data_dir={glue_dir}",
                   "optimizer.lr=1e-4,3e-5", "data.limit_train_examples=32", "data.limit_eval_examples=32",
                   "trainer.max_epochs=1", f"hydra.sweep.dir={tmp_path}",
                   "+hydra.callbacks.summary._target_=bert_pl.tasks.sweep.SweepSummary"])
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["job"] for r in summary] == ["0", "1"]
    lrs = [float(o.split("=")[1]) for r in summary for o in r["overrides"].split() if o.startswith("optimizer.lr=")]
    assert lrs == [1e-4, 3e-5]
    assert all(r["metric"] == "pearson" for r in summary)
    assert "best pearson=" in res.stdout and (tmp_path / "summary.txt").is_file()


def test_finetune_is_reproducible_for_a_fixed_seed(tiny_pretrained, tmp_path):
    glue_dir = shared("glue")
    values = []
    for run in ("a", "b"):
        res = run_cli(["finetune.py", "task=cola", f"pretrained={tiny_pretrained}", f"data_dir={glue_dir}",
                       "data.limit_train_examples=48", "data.limit_eval_examples=48", "trainer.max_epochs=1",
                       f"hydra.run.dir={tmp_path / run}", "seed=3"])
        assert res.returncode == 0, res.stderr[-3000:]
        values.append((tmp_path / run / "predictions_dev.jsonl").read_text())
    assert values[0] == values[1]


def test_finetune_step_for_step_equals_a_plain_transformers_loop(minilm_dir, tmp_path):
    """The composed fine-tuning recipe (AdamW with BERT's decay groups, 10% warmup + linear decay, clipping at 1.0,
    Lightning's loop, unpadded encoder) against a hand-written transformers loop on the same real weights and the
    same batches, dropout off and the same classifier init: the loss agrees at every step."""
    import math

    import lightning as L
    import torch
    import transformers
    from hydra.utils import instantiate

    from bert_pl.io import checkpoints
    from bert_pl.training.checks import model_dict
    from bert_pl.io import tokenization
    from helpers import compose_cfg

    cfg = compose_cfg("finetune", ["task=mrpc", f"pretrained={minilm_dir}", f"data_dir={shared('glue')}",
                                   "data.limit_train_examples=160", "trainer.max_epochs=2",
                                   "model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0",
                                   "logger=[]", "callbacks=[]"], tmp_path)
    L.seed_everything(cfg.seed)
    dm = instantiate(cfg.data)
    dm.set_tokenizer(tokenization.from_json_string(checkpoints.resolve(cfg.pretrained).tokenizer_json))
    module = instantiate(cfg.module, _convert_="all", model=model_dict(cfg.model, 0, cfg.pretrained),
                         head=dm.head, head_kwargs=dm.head_kwargs(), labels=dm.labels, main_metric=dm.main_metric,
                         optimizer=instantiate(cfg.optimizer), pretrained=cfg.pretrained)
    classifier = {k: v.clone() for k, v in module.model.classifier.state_dict().items()}
    batches, losses = [], []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            batches.append(batch)
            losses.append(float(outputs["loss"]))

    trainer = instantiate(cfg.trainer, callbacks=[Record()], logger=False, enable_checkpointing=False,
                          limit_val_batches=0, enable_progress_bar=False)
    trainer.fit(module, datamodule=dm)
    assert len(losses) == 10

    hf = transformers.BertForSequenceClassification.from_pretrained(
        str(minilm_dir), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    hf.classifier.load_state_dict(classifier)
    no_decay = ("bias", "LayerNorm")
    opt = torch.optim.AdamW(
        [{"params": [p for n, p in hf.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
         {"params": [p for n, p in hf.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0}],
        lr=2e-5, eps=1e-6)
    sched = transformers.get_linear_schedule_with_warmup(opt, math.floor(0.1 * 10), 10)
    hf.train()
    reference = []
    for batch in batches:
        loss = hf(**{k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask", "labels")}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        reference.append(loss.item())
    assert losses == pytest.approx(reference, abs=1e-5)
    # and both moved the weights the same way
    ours, theirs = module.model.classifier.weight.detach(), hf.classifier.weight.detach()
    assert not torch.equal(ours, classifier["weight"])
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_glue_all_writes_the_report_and_a_zip_of_eleven_files(tiny_pretrained, glue_dir, tmp_path):
    """experiment=glue_all, bert_tiny, limited examples, one lr: the four real GLUE tasks of ../shared plus small
    files in GLUE's layout for the others. The report has a row per task and the zip the eleven files the GLUE
    server expects, each with one row per test example read (data.limit_eval_examples cuts test files too)."""
    import zipfile

    for folder in ("CoLA", "MRPC", "SST-2", "STS-B"):
        (glue_dir / folder).symlink_to(shared("glue", folder))
    sweep = tmp_path / "sweep"
    res = run_cli(["finetune.py", "-m", "experiment=glue_all", f"pretrained={tiny_pretrained}", f"data_dir={glue_dir}",
                   "optimizer.lr=1e-4", "data.limit_train_examples=32", "data.limit_eval_examples=32",
                   "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"], timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((sweep / "glue_report.json").read_text())
    assert (sweep / "glue_report.md").is_file() and "Average" in (sweep / "glue_report.md").read_text()
    with zipfile.ZipFile(sweep / "glue_submission.zip") as z:
        names = sorted(z.namelist())
        assert names == sorted(["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv",
                                "MNLI-mm.tsv", "QNLI.tsv", "RTE.tsv", "WNLI.tsv", "AX.tsv"])
        for name, (folder, test_file) in {"MRPC.tsv": ("MRPC", "test.tsv"), "CoLA.tsv": ("CoLA", "test.tsv"),
                                          "AX.tsv": ("diagnostic", "diagnostic.tsv"),
                                          "MNLI-mm.tsv": ("MNLI", "test_mismatched.tsv")}.items():
            rows = z.read(name).decode().splitlines()
            n_test = len((glue_dir / folder / test_file).read_text(encoding="utf-8-sig").splitlines()) - 1
            assert rows[0] == "index\tprediction" and len(rows) == 1 + min(32, n_test), name
    assert report["missing_tasks"] == [] and len(report["table"]) == 11
    assert all(isinstance(v, float) for v in report["table"].values())
    assert "MRPC F1" in res.stdout and "Average" in res.stdout  # the console shows the table too
