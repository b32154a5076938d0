"""Using trained models: predict.py, the Python API (bert_pl.load / finetune / pretrain), runs/latest, train=false."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, shared


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny pretraining run and an MRPC fine-tuning run from it (found through latest:train), in their own
    outputs folder."""
    outputs = tmp_path_factory.mktemp("outputs")
    env = {"BERT_PL_OUTPUTS": str(outputs)}
    res = run_cli(["train.py", "data=sample_text", "data.batch_size=8", "data.num_workers=0", "trainer.max_steps=4",
                   "trainer.val_check_interval=4", f"paths.log_dir={outputs}",
                   f"data.cache_dir={outputs / 'cache'}"], env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli(["finetune.py", "task=mrpc", f"data_dir={shared('glue')}", "data.limit_train_examples=48",
                   "trainer.max_epochs=1", f"paths.log_dir={outputs}", "optimizer.lr=1e-3"], env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "starting from the newest pretraining run" in res.stdout + res.stderr
    return outputs, env


def test_latest_links_point_at_the_finished_runs(runs):
    outputs, _ = runs
    for task in ("train", "finetune/mrpc"):
        link = outputs / task / "runs" / "latest"
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert (link / ".hydra").is_dir()
    results = json.loads((outputs / "finetune/mrpc/runs/latest/results.json").read_text())
    assert "/train/runs/" in results["pretrained"]  # fine-tuned from the pretraining run


def test_predict_cli_equals_the_fine_tuning_runs_own_dev_predictions(runs, tmp_path):
    outputs, env = runs
    rows = [line.split("\t") for line in shared("glue", "MRPC", "dev.tsv").read_text(encoding="utf-8-sig")
            .splitlines()[1:]]
    (tmp_path / "dev.txt").write_text("".join(f"{r[3]}\t{r[4]}\n" for r in rows), encoding="utf-8")
    res = run_cli(["predict.py", "model=latest:mrpc", f"input={tmp_path / 'dev.txt'}",
                   f"output={tmp_path / 'preds.jsonl'}"], env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ours = [json.loads(line) for line in open(tmp_path / "preds.jsonl")]
    run = [json.loads(line) for line in open(outputs / "finetune/mrpc/runs/latest/predictions_dev.jsonl")]
    assert len(ours) == len(run) == 408
    assert [r["label"] for r in ours] == [r["label"] for r in run]
    assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for a, b in zip(ours, run)
               for k in a["probabilities"]) < 1e-5


def test_predict_from_stdin_and_one_line_errors(runs, tmp_path, monkeypatch, capsys):
    _, env = runs
    res = run_cli(["predict.py", "model=latest:finetune/mrpc", "input=-"], env=env,
                  input="The cat sat.\tA cat was sitting.\nIt rains.\tIt is wet.\n")
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stdout.splitlines() if '"label"' in line]
    assert len(lines) == 2 and lines[0].startswith("The cat sat. | A cat was sitting.")
    for text in ("The cat sat.\tA cat: sitting, [yes]", "yes\t#hash [MASK]"):  # taken as typed, not as YAML
        res = run_cli(["predict.py", "model=latest:mrpc", f"text={text}"], env=env)
        assert res.returncode == 0 and text.replace("\t", " | ")[:60] in res.stdout, res.stderr[-2000:]
    cases = [
        (["model=latest:mrpc", "text=only one text"], "input 1: the model was fine-tuned on pairs"),
        (["model=latest:train", "mode=predict", "text=hi"], "is a pretraining checkpoint with no task head"),
        (["model=latest:train", "text=no mask here"], "no [MASK] in 'no mask here'"),
        (["model=latest:squad_v1", "text=x"], "latest:squad_v1: no finished run found"),
        (["model=latest:mrpc", f"input={tmp_path / 'missing.txt'}"], "missing.txt not found"),
        (["model=latest:mrpc", "colour=red"], "unknown setting 'colour'"),
        (["input=x.txt"], "pass model=..."),
    ]
    (tmp_path / "empty.txt").write_text("\n\n")
    cases.append((["model=latest:mrpc", f"input={tmp_path / 'empty.txt'}"], "no input lines"))
    import predict

    monkeypatch.setenv("BERT_PL_OUTPUTS", env["BERT_PL_OUTPUTS"])
    for args, message in cases:  # in-process (as `python predict.py ARGS` runs them), to keep the suite short
        with pytest.raises(SystemExit) as stop:
            predict.main(args)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err, (args, err[-2000:])
        assert "Traceback" not in err and err.strip().count("\n") == 0, err


def test_python_api_load_predict_fill_mask_embed(runs, monkeypatch):
    outputs, env = runs
    monkeypatch.setenv("BERT_PL_OUTPUTS", env["BERT_PL_OUTPUTS"])
    import bert_pl

    clf = bert_pl.load(outputs / "finetune/mrpc/runs/latest")
    assert clf.head == "classification" and clf.labels == ["0", "1"] and clf.max_seq_length == 128
    out = clf.predict([("The cat sat.", "A cat was sitting."), ("Hi.", "Bye.")])
    assert [set(r) for r in out] == [{"label", "probabilities"}] * 2
    assert abs(sum(out[0]["probabilities"].values()) - 1) < 1e-5
    lm = bert_pl.load("latest:train")
    masks = lm.fill_mask("the [MASK] sat on the [MASK] .", top_k=3)
    assert len(masks) == 2 and all(len(m) == 3 for m in masks)
    assert masks[0][0]["probability"] >= masks[0][1]["probability"] >= masks[0][2]["probability"]
    vectors = lm.embed(["a sentence", "another, longer sentence here"], layers=[-1, -2], pooling="mean")
    hidden = lm.model.config.hidden_size
    assert vectors.shape == (2, 2 * hidden) and np.isfinite(vectors).all()
    with pytest.raises(bert_pl.inference.model.PredictError, match="pretraining checkpoint with no task head"):
        lm.predict(["x"])


def test_minilm_embed_matches_transformers(minilm_dir):
    import torch
    import transformers

    import bert_pl

    model = bert_pl.load(minilm_dir)
    texts = ["The quick brown fox.", "A much longer sentence, with several more words in it than the first."]
    ours = model.embed(texts, layers=[-1], pooling="mean", normalize=False)  # (its own: mean, L2-normalised)
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    hf = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    with torch.no_grad():
        x = tok(texts, padding=True, return_tensors="pt")
        h = hf(**x).last_hidden_state
        m = x["attention_mask"].unsqueeze(-1).float()
        ref = ((h * m).sum(1) / m.sum(1)).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_train_false_evaluates_a_fine_tuned_model(runs, tmp_path):
    outputs, env = runs
    before = os.readlink(outputs / "finetune/mrpc/runs/latest")
    res = run_cli(["finetune.py", "task=mrpc", "model_path=latest:mrpc", "train=false", f"data_dir={shared('glue')}",
                   f"hydra.run.dir={tmp_path / 'eval'}"], env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli(["finetune.py", "task=mrpc", "model_path=latest:mrpc", "train=false", f"data_dir={shared('glue')}",
                   f"paths.log_dir={outputs}", "data.limit_eval_examples=8"], env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert os.readlink(outputs / "finetune/mrpc/runs/latest") == before  # an evaluate-only run keeps latest
    again = (tmp_path / "eval" / "predictions_dev.jsonl").read_text()
    assert again == (outputs / "finetune/mrpc/runs/latest/predictions_dev.jsonl").read_text()
    assert (tmp_path / "eval" / "submission" / "MRPC.tsv").is_file()
    res = run_cli(["finetune.py", "task=stsb", "model_path=latest:mrpc", "train=false", f"data_dir={shared('glue')}",
                   f"hydra.run.dir={tmp_path / 'wrong'}"], env=env)
    assert res.returncode == 2 and "was fine-tuned with labels ['0', '1'], task=stsb has ['score']" in res.stderr
    res = run_cli(["finetune.py", "task=mrpc", "train=false", f"hydra.run.dir={tmp_path / 'none'}"], env=env)
    assert res.returncode == 2 and "train=false evaluates a fine-tuned model: pass model_path=" in res.stderr


def test_no_pretrained_and_no_pretraining_run_says_what_to_pass(tmp_path):
    res = run_cli(["finetune.py", "task=mrpc", f"hydra.run.dir={tmp_path / 'run'}"],
                  env={"BERT_PL_OUTPUTS": str(tmp_path / "empty")})
    assert res.returncode == 2, res.stderr[-2000:]
    assert "no pretrained= given and no pretraining run found" in res.stderr


def test_multiple_choice_predictions_equal_the_models_own_scores(tiny_checkpoint, minilm_tokenizer):
    import torch

    import bert_pl

    path, model = tiny_checkpoint("multiple_choice")
    inputs = [{"context": "A man sits on a bench.", "choices": ["He stands up.", "He eats lunch.", "A dog runs."]},
              {"context": "The sun rises.", "choices": ["Birds sing.", "It snows indoors."]}]
    out = bert_pl.load(path).predict(inputs)
    for x, r in zip(inputs, out):
        enc = [minilm_tokenizer.encode(x["context"], c) for c in x["choices"]]
        ids = torch.tensor([[e.ids for e in enc]]) if len({len(e.ids) for e in enc}) == 1 else None
        if ids is None:  # pad to one width
            width = max(len(e.ids) for e in enc)
            ids = torch.tensor([[e.ids + [0] * (width - len(e.ids)) for e in enc]])
            types = torch.tensor([[e.type_ids + [0] * (width - len(e.ids)) for e in enc]])
            mask = torch.tensor([[[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in enc]])
        else:
            types, mask = torch.tensor([[e.type_ids for e in enc]]), torch.ones_like(ids)
        with torch.no_grad():
            expected = torch.softmax(model(ids, types, mask)["logits"][0], -1).numpy()
        assert len(r["probabilities"]) == len(x["choices"]) and r["label"] == int(expected.argmax())
        np.testing.assert_allclose(r["probabilities"], expected, atol=1e-5)


def test_predict_reads_swag_csv_in_the_layout_the_model_was_trained_on(tmp_path, tiny_checkpoint):
    """A model fine-tuned with task=swag records SWAG's columns (sent1, sent2 + ending0..3); predict.py then reads
    SWAG's own CSV (test.csv, no label column) and predicts what the API does on the assembled choices."""
    import csv

    import bert_pl

    swag = {"context_column": "sent1", "choices_column": "choices", "choice_columns": None,
            "choice_prefix_column": "sent2", "label_column": "label", "id_column": None}
    path, _ = tiny_checkpoint("multiple_choice", info={"task": {"max_seq_length": 128, "columns": swag}})
    data = Path(__file__).parent / "data" / "swag_sample" / "test.csv"
    res = run_cli(["predict.py", f"model={path}", f"input={data}", f"output={tmp_path / 'p.jsonl'}"])
    assert res.returncode == 0, res.stderr[-2000:]
    got = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    with open(data, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(got) == len(rows)
    expected = bert_pl.load(path).predict(
        [{"context": r["sent1"], "choices": [f"{r['sent2']} {r[f'ending{j}']}" for j in range(4)]} for r in rows])
    for g, e in zip(got, expected):
        assert g["label"] == e["label"]
        np.testing.assert_allclose(g["probabilities"], e["probabilities"], atol=1e-5)
    # a context + choices JSON lines file still works with the same model
    (tmp_path / "mc.jsonl").write_text(json.dumps({"context": "He sat.", "choices": ["He stood.", "A dog ran."]}))
    res = run_cli(["predict.py", f"model={path}", f"input={tmp_path / 'mc.jsonl'}"])
    assert res.returncode == 0, res.stderr[-2000:]
    # a file in neither layout: one line naming the columns expected
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    res = run_cli(["predict.py", f"model={path}", f"input={tmp_path / 'bad.csv'}"])
    assert res.returncode == 2 and "no context column 'sent1'" in res.stderr and res.stderr.count("\n") == 1


def test_span_predictions_point_into_the_context(tiny_checkpoint):
    import bert_pl

    path, _ = tiny_checkpoint("span")
    inputs = [{"question": "Who met Bob?", "context": "Alice met Bob in Paris in the spring of 1999."},
              {"question": "Where?", "context": "The meeting took place in a small cafe near the river."}]
    out = bert_pl.load(path).predict(inputs)
    for x, r in zip(inputs, out):
        assert r["answer"] and x["context"][r["start"]:r["end"]] == r["answer"]
        assert 0 < r["score"] <= 1
    with pytest.raises(bert_pl.inference.model.PredictError, match="takes {'question'"):
        bert_pl.load(path).predict(["just text"])


def test_token_classification_entities_with_offsets(tiny_checkpoint, minilm_tokenizer):
    import torch

    import bert_pl

    labels = ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]
    path, model = tiny_checkpoint("token_classification", info={"labels": labels})
    text = "EU rejects German call to boycott British lamb, says Peter Blackburn."
    out = bert_pl.load(path).predict([text, ["Peter", "Blackburn"]])[0]
    words = [w["word"] for w in out["words"]]
    assert words[:4] == ["EU", "rejects", "German", "call"] and "," in words and words[-1] == "."
    assert all(text[w["start"]:w["end"]] == w["word"] for w in out["words"])
    enc = minilm_tokenizer.encode(words, is_pretokenized=True)
    first = [enc.word_ids.index(i) for i in range(len(words))]
    with torch.no_grad():
        logits = model(torch.tensor([enc.ids]), torch.tensor([enc.type_ids]))["logits"][0]
    assert [w["tag"] for w in out["words"]] == [labels[int(logits[p].argmax())] for p in first]
    for e in out["entities"]:
        assert text[e["start"]:e["end"]] == e["text"] and e["type"] in ("LOC", "ORG", "PER")


def test_predict_cli_reads_conll_and_json_lines_for_a_tagger(tmp_path, tiny_checkpoint):
    path, _ = tiny_checkpoint("token_classification", info={"labels": ["B-PER", "I-PER", "O"]})
    (tmp_path / "dev.conll").write_text("-DOCSTART- O\n\nJohn B-PER\nlives O\nhere O\n\nMary B-PER\n")
    (tmp_path / "dev.jsonl").write_text('{"tokens": ["John", "lives", "here"]}\n{"tokens": ["Mary"]}\n')
    for name in ("dev.conll", "dev.jsonl"):
        res = run_cli(["predict.py", f"model={path}", f"input={tmp_path / name}", f"output={tmp_path / name}.out"])
        assert res.returncode == 0, res.stderr[-2000:]
        rows = [json.loads(line) for line in open(tmp_path / f"{name}.out")]
        assert [[w["word"] for w in r["words"]] for r in rows] == [["John", "lives", "here"], ["Mary"]]
