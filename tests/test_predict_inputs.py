"""predict.py and bert_pl.load with bad settings, odd inputs and dangerous outputs: typed settings, one result per
text, output line N = input line N, and an output= that never replaces an input, a model or a checkpoint."""
import json
import os

import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint):
    """A tiny single-text classifier (random weights, labels neg/pos) saved in our format."""
    return tiny_checkpoint("classification", info={"labels": ["neg", "pos"], "problem_type": "single_label",
                                                   "task": {"max_seq_length": 32, "pairs": False}})[0]


def predict(args, capsys):
    """predict.py in-process: (exit code, stdout, stderr)."""
    from bert_pl.cli.predict import main

    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_settings_are_typed(classifier, capsys, tmp_path):
    (tmp_path / "in.csv").write_text("text,label\ngood,pos\nbad,neg\n")
    code, out, err = predict([f"model={classifier}", f"input={tmp_path / 'in.csv'}", "max_seq_length=16",
                              "text_columns=[text]", "batch_size=1", f"output={tmp_path / 'p.jsonl'}"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["label"] in ("neg", "pos") for r in rows)
    # a bare column name is a one-item list
    code, _, err = predict([f"model={classifier}", f"input={tmp_path / 'in.csv'}", "text_columns=text"], capsys)
    assert code == 0, err
    from bert_pl.cli.predict import compose

    cfg = compose(["model=m", "text=12345", "layers=[-1,-2]"])
    assert cfg.text == "12345" and list(cfg.layers) == [-1, -2] and cfg.max_seq_length is None


@pytest.mark.parametrize("setting, message", [
    ("max_seq_length=abc", "max_seq_length='abc': expected a whole number"),
    ("batch_size=0", "batch_size=0: expected a whole number of at least 1"),
    ("batch_size=-5", "batch_size=-5: expected a whole number of at least 1"),
    ("batch_size=1.5", "batch_size='1.5': expected a whole number"),
    ("max_seq_length=0", "max_seq_length=0: expected a whole number of at least 1"),
    ("top_k=0", "top_k=0: expected a whole number of at least 1"),
    ("layers=[a]", "layers=['a']: give a list of layer numbers"),
    ("device=gpu7", "device='gpu7': use cpu, cuda or cuda:N"),
    ("text=", "text= is empty"),
    ("text=   ", "text= is empty"),
])
def test_bad_settings_are_one_line_errors(classifier, capsys, setting, message):
    args = [f"model={classifier}", "text=fine", setting]
    if setting.startswith("top_k") or setting.startswith("layers"):
        args.append("mode=fill_mask" if setting.startswith("top_k") else "mode=embed")
    code, _, err = predict(args, capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_cuda_without_a_gpu_says_pass_device_cpu(classifier, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = predict([f"model={classifier}", "text=fine", "device=cuda"], capsys)
    assert code == 2 and "no CUDA GPU is available here" in err and "pass device=cpu" in err, err


def test_one_text_gets_one_result(classifier):
    import bert_pl

    model = bert_pl.load(classifier)
    one = model.predict("Great blender")
    assert isinstance(one, dict) and one["label"] in ("neg", "pos")
    assert model.predict(["Great blender"]) == [one]
    assert len(model.predict(["Great blender", "Bad"])) == 2
    vector = model.embed("Great blender")
    assert vector.shape == (model.config.hidden_size,)
    np.testing.assert_allclose(vector, model.embed(["Great blender"])[0], atol=1e-6)
    with pytest.raises(bert_pl.inference.model.PredictError, match="batch_size=0"):
        bert_pl.load(classifier, batch_size=0)


def test_blank_lines_keep_output_lines_in_step_with_input_lines(classifier, capsys, caplog, tmp_path):
    (tmp_path / "in.txt").write_text("good\n\nbad\n   \nfine\n\n\n")
    code, _, err = predict([f"model={classifier}", f"input={tmp_path / 'in.txt'}",
                            f"output={tmp_path / 'p.jsonl'}"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 5  # blank lines at the end are no examples
    assert rows[1] == rows[3] == {"skipped": "blank line"} and all("label" in rows[i] for i in (0, 2, 4))
    assert "2 blank line(s) (line 2, 4)" in caplog.text
    import bert_pl

    assert rows[2]["label"] == bert_pl.load(classifier).predict("bad")["label"]


def test_output_never_replaces_inputs_models_or_checkpoints(classifier, capsys, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("good\nbad\n")
    (tmp_path / "link.txt").symlink_to(texts)
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "x", "label": "pos"}\n')
    before = classifier.read_bytes()
    cases = [
        (texts, "is the input file"),
        (tmp_path / "link.txt", "is the input file"),
        (classifier, ".ckpt file holds model weights"),
        (tmp_path / "new.safetensors", ".safetensors file holds model weights"),
        (run / "preds.jsonl", "inside a run's checkpoints/ folder"),
        (data, "exists and is not a predictions file of predict.py"),
        (tmp_path, "is a folder"),
    ]
    for output, message in cases:
        code, _, err = predict([f"model={classifier}", f"input={texts}", f"output={output}"], capsys)
        assert code == 2 and message in err and "output=predictions.jsonl" in err, (output, err)
    assert texts.read_text() == "good\nbad\n" and classifier.read_bytes() == before
    assert data.read_text() == '{"text": "x", "label": "pos"}\n' and not any(run.iterdir())
    # an earlier predictions file is replaced, whole
    out = tmp_path / "preds.jsonl"
    for _ in range(2):
        code, _, err = predict([f"model={classifier}", f"input={texts}", f"output={out}"], capsys)
        assert code == 0, err
    assert len(out.read_text().splitlines()) == 2
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cli_bad_settings_end_in_one_line(classifier):
    """The same checks through predict.py itself: no traceback, exit code 2."""
    res = run_cli(["predict.py", f"model={classifier}", "text=fine", "batch_size=-5"])
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: batch_size=-5: expected a whole number of at least 1"], res.stderr


def test_numbers_as_text_in_a_predict_input_name_the_row_and_key(classifier, capsys, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "fine"}\n{"text": 12345}\n')
    code, _, err = predict([f"model={classifier}", f"input={tmp_path / 'in.jsonl'}"], capsys)
    assert code == 2 and "in.jsonl: row 2: 'text' holds a number (12345), not a text" in err, err
    (tmp_path / "twice.csv").write_text("text,text\na,b\n")
    code, _, err = predict([f"model={classifier}", f"input={tmp_path / 'twice.csv'}"], capsys)
    assert code == 2 and "names column 'text' twice" in err, err
