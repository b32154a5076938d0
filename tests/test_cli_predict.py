"""predict.py's documented commands, as the shell hands them over (quotes stripped, tabs kept), in this process:
each works as written through Hydra, and nothing is written but output= (no outputs/, .hydra/ or log file)."""
import io
import json
import os
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_checkpoint):
    """A folder with a finished fine-tuning run of MRPC (a tiny pair classifier) and a pretraining run, laid out as
    train.py and finetune.py leave them (runs/<time>/checkpoints/last.ckpt, runs/latest)."""
    import shutil

    root = tmp_path_factory.mktemp("project")
    runs = {"finetune/mrpc": tiny_checkpoint("classification", info={"labels": ["0", "1"], "problem_type": "single_label",
                                                                    "task": {"max_seq_length": 32, "pairs": True}}),
            "train": tiny_checkpoint("pretraining")}
    for task, (path, _) in runs.items():
        run = root / "outputs" / task / "runs" / "2024-01-01_00-00-00"
        (run / "checkpoints").mkdir(parents=True)
        shutil.copy(path, run / "checkpoints" / "last.ckpt")
        os.symlink(run.name, run.parent / "latest")
    return root


@pytest.fixture
def predict(project, monkeypatch, capsys):
    """`python predict.py ARGS` run from the project folder: (exit code, stdout, stderr); checks that it wrote
    nothing there but its output= file."""
    import predict as script

    monkeypatch.chdir(project)
    monkeypatch.setenv("BERT_PL_OUTPUTS", str(project / "outputs"))

    def run(*args, stdin=None):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        before = set(project.rglob("*"))
        code = 0
        try:
            script.main(list(args))
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        outputs = {project / a.split("=", 1)[1] for a in args if a.startswith("output=")}
        written = set(project.rglob("*")) - before - outputs
        assert not written, f"predict.py wrote {sorted(map(str, written))}"
        return code, out, err

    return run


def jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_documented_commands_work_as_written(project, predict):
    (project / "pairs.tsv").write_text("sentence1\tsentence2\nThe cat sat.\tA cat was sitting.\nIt rains.\tIt is wet.\n")
    code, _, err = predict("model=outputs/finetune/mrpc/runs/latest", "input=pairs.tsv", "output=preds.jsonl")
    assert code == 0, err
    rows = jsonl(project / "preds.jsonl")
    assert len(rows) == 2 and all(r["label"] in ("0", "1") for r in rows)

    code, out, err = predict("model=latest:finetune/mrpc", "input=-", stdin="The cat sat.\tA cat was sitting.\n")
    assert code == 0 and out.startswith("The cat sat. | A cat was sitting.") and '"label"' in out, err

    code, out, err = predict("model=outputs/train/runs/latest/checkpoints/last.ckpt",
                             "text=Paris is the [MASK] of France.")  # the shell has stripped text="..."'s quotes
    assert code == 0 and out.startswith("Paris is the [MASK] of France.") and '"masks"' in out, err


def test_settings_arrive_typed_as_typed(project, predict):
    from bert_pl.cli.predict import compose

    cfg = compose(["model=m", "text=a\tb", "id_column=123", "text_columns=text", "max_seq_length=null",
                   "layers=[-1,-2]", "output=null"])
    assert (cfg.text, cfg.id_column, list(cfg.text_columns), cfg.max_seq_length, list(cfg.layers), cfg.output) == \
        ("a\tb", "123", ["text"], None, [-1, -2], None)
    for text in ("Hi, [yes] #1: ${HOME} 'q' \"dq\" \\", "12345", "true", "a=b", "[x,y]"):  # as typed, not as YAML
        assert compose(["model=m", f"text={text}"]).text == text
    cfg = compose(["model=m", "text_columns=[question,context]", "max_seq_length=64", "batch_size=8"])
    assert list(cfg.text_columns) == ["question", "context"] and (cfg.max_seq_length, cfg.batch_size) == (64, 8)

    code, out, err = predict("model=latest:finetune/mrpc", "text=a\tb")  # a tab between the pair's texts
    assert code == 0 and out.startswith("a | b"), err
    (project / "qa.csv").write_text("question,context,123\nWho?,Ann was here.,q1\nWhere?,In Rome.,q2\n")
    code, _, err = predict("model=latest:finetune/mrpc", "input=qa.csv", "text_columns=[question,context]",
                           "id_column=123", "max_seq_length=null", "output=qa.jsonl")
    assert code == 0, err
    assert [r["id"] for r in jsonl(project / "qa.jsonl")] == ["q1", "q2"]
    (project / "one.csv").write_text("text\nfine\n")
    code, out, err = predict("model=latest:train", "input=one.csv", "text_columns=text", "mode=embed",
                             "layers=[-1,-2]", "output=emb.jsonl")
    assert code == 0 and len(jsonl(project / "emb.jsonl")[0]["embedding"]) == 2 * 64, err  # two layers of hidden 64


def test_bad_settings_are_one_line_exit_2(predict):
    import torch

    cases = [(["text=fine", "batch_size=0"], "batch_size=0: expected a whole number of at least 1"),
             (["text=fine", "batch_size=1.5"], "batch_size='1.5': expected a whole number"),
             (["text=fine", "top_k=many"], "top_k='many': expected a whole number"),
             (["text=fine", "colour=red"], "unknown setting 'colour'"),
             (["text=fine", "verbose"], "'verbose': arguments are key=value")]
    if not torch.cuda.is_available():
        cases.append((["text=fine", "device=cuda"], "pass device=cpu"))
    for args, message in cases:
        code, out, err = predict("model=latest:finetune/mrpc", *args)
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)
    code, _, err = predict("text=fine")
    assert code == 2 and "pass model=..." in err and err.count("\n") == 1, err
