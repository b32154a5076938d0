"""`task=multiple_choice` and `task=swag` (the BERT paper, section 4.4): reading SWAG's CSV layout and the JSON-lines
form, features and the (B, K, S) collator, the head's parity with transformers' BertForMultipleChoice and checkpoint
interop both ways, bad input as one-line errors (also through the CLI), the offline hub gate, an end-to-end run on
the SWAG-layout sample in tests/data/swag_sample (written for these tests, see its generate.py), and a short
fine-tune from MiniLM that learns it."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch

from bert_pl.io import checkpoints
from bert_pl.io.hub import OfflineError, hub_reachable
from bert_pl.model.bert import BertConfig
from bert_pl.model.heads import BertForMultipleChoice
from bert_pl.tasks.base import TaskDataError
from bert_pl.tasks.multiple_choice import MultipleChoiceTask, SwagTask
from conftest import ROOT, run_cli

SAMPLE = ROOT / "tests" / "data" / "swag_sample"
PRESETS = {  # (hidden, layers, heads, intermediate): Google's published sizes, as tests/test_modeling.py
    "bert_tiny": (128, 2, 2, 512), "bert_mini": (256, 4, 4, 1024), "bert_small": (512, 4, 8, 2048),
    "bert_medium": (512, 8, 8, 2048), "bert_base": (768, 12, 12, 3072), "bert_large": (1024, 24, 16, 4096),
}


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def reference(tok, max_len=128):
    """The tokenizer as the task should use it: pairs, trimmed longest-first."""
    from tokenizers import Tokenizer

    ref = Tokenizer.from_str(tok.to_str())
    ref.no_padding()
    ref.enable_truncation(max_len, strategy="longest_first")
    return ref


def rows_k3(n=6):
    topics = ["the cat sleeps on the sofa", "a man repairs a bicycle", "children build a sandcastle"]
    return [{"id": f"q{i}", "context": f"Row {i}: {topics[i % 3]}.",
             "choices": [f"choice {j} of row {i}, " + "long " * (i * j % 4) for j in range(3)], "label": i % 3}
            for i in range(n)]


def write(path, rows):
    """JSON lines (.jsonl), a JSON array (.json), or a csv with `choices` as a JSON array (.csv)."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(list(rows[0]))
            w.writerows([json.dumps(v) if isinstance(v, list) else v for v in r.values()] for r in rows)
    return path


def task_for(tok, train, dev, **kw):
    task = MultipleChoiceTask(train_file=str(train), validation_file=str(dev), **kw)
    task.set_tokenizer(tok)
    return task


# -- 1. reading --------------------------------------------------------------------------------------------------
def test_swag_layout_sample(minilm_tokenizer):
    task = SwagTask(data_dir=str(SAMPLE))
    task.set_tokenizer(minilm_tokenizer)
    task.prepare()
    assert task.num_choices == 4 and task.main_metric == "acc" and task.head == "multiple_choice"
    assert task.test_splits() == ["test"] and task.results_info() == {"num_choices": 4}
    ref = reference(minilm_tokenizer)
    for split, name, n in [("train", "train.csv", 60), ("dev", "val.csv", 30), ("test", "test.csv", 10)]:
        rows, table = read_csv(SAMPLE / name), task.features(split)
        assert len(table) == len(rows) == n
        assert list(rows[0])[:3] == ["", "video-id", "fold-ind"] and list(rows[0])[7:11] == [
            f"ending{j}" for j in range(4)]  # SWAG's layout, its unnamed index column first
        assert table.row_ids == [str(i) for i in range(n)]
        assert table.gold == ([int(r["label"]) for r in rows] if split != "test" else [None] * n)
        for i in (0, n - 1):
            f = table[i]
            assert f["example_index"] == i and len(f["input_ids"]) == 4
            for j in range(4):  # [CLS] sent1 [SEP] sent2 endingN [SEP]
                enc = ref.encode(rows[i]["sent1"], rows[i]["sent2"] + " " + rows[i][f"ending{j}"])
                assert f["input_ids"][j].tolist() == enc.ids and f["token_type_ids"][j].tolist() == enc.type_ids
    assert "labels" not in task.features("test")[0]
    assert task.features("dev")[3]["labels"] == task.features("dev").gold[3]
    # the sample is balanced enough that always answering one index cannot pass the learning test
    assert max(np.bincount(task.features("dev").labels, minlength=4)) <= 12


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "csv_columns"])
def test_json_lines_form_and_others(fmt, minilm_tokenizer, tmp_path):
    rows = rows_k3()
    if fmt == "csv_columns":  # one column per choice, found by name
        flat = [{"id": r["id"], "context": r["context"], **{f"choice{j}": c for j, c in enumerate(r["choices"])},
                 "label": r["label"]} for r in rows]
        train, dev = write(tmp_path / "train.csv", flat), write(tmp_path / "dev.csv", flat[:4])
    else:
        ext = fmt
        train, dev = write(tmp_path / f"train.{ext}", rows), write(tmp_path / f"dev.{ext}", rows[:4])
    task = task_for(minilm_tokenizer, train, dev)
    task.prepare()
    assert task.num_choices == 3 and task.test_splits() == []
    table = task.features("train")
    assert table.row_ids == [r["id"] for r in rows] and list(table.labels) == [r["label"] for r in rows]
    ref = reference(minilm_tokenizer)
    for i, r in enumerate(rows):
        assert [s.tolist() for s in table[i]["input_ids"]] == [ref.encode(r["context"], c).ids for c in r["choices"]]
    assert len(task.features("dev")) == 4


def test_collator_shapes_and_truncation(minilm_tokenizer, tmp_path):
    rows = rows_k3()
    rows[1]["context"] = "a very long context " * 40
    train = write(tmp_path / "train.jsonl", rows)
    task = task_for(minilm_tokenizer, train, train, max_seq_length=32)
    table = task.features("train")
    lengths = [[len(s) for s in table[i]["input_ids"]] for i in range(len(table))]
    assert max(map(max, lengths)) == 32 and lengths[1] == [32, 32, 32]
    ref = reference(minilm_tokenizer, 32)
    assert table[1]["input_ids"][2].tolist() == ref.encode(rows[1]["context"], rows[1]["choices"][2]).ids
    assert table[1]["token_type_ids"][2].sum() >= 4  # longest-first trims the context, the choice stays
    batch = task.collator()([table[i] for i in (0, 2, 3)])
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "example_index"}
    width = -(-max(max(lengths[i]) for i in (0, 2, 3)) // 8) * 8
    assert batch["input_ids"].shape == batch["token_type_ids"].shape == batch["attention_mask"].shape == (3, 3, width)
    assert batch["attention_mask"].sum(-1).tolist() == [lengths[i] for i in (0, 2, 3)]
    assert batch["labels"].tolist() == [0, 2, 0] and batch["example_index"].tolist() == [0, 2, 3]
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()
    task.static_shapes = True  # XLA: one width for every batch
    assert task.collator()([table[0]])["input_ids"].shape == (1, 3, 32)
    task.batch_size = 4
    assert [b["input_ids"].shape for b in task.train_dataloader()] == [(4, 3, 32)]  # fixed shapes: drop_last


def test_configs_compose_and_instantiate(tmp_path):
    """Every key of conf/task/multiple_choice.yaml and swag.yaml is an argument of its task; the paper's settings."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from helpers import compose_cfg

    train = write(tmp_path / "train.jsonl", rows_k3())
    cfg = compose_cfg("finetune", ["task=multiple_choice", "pretrained=/x", f"data.train_file={train}",
                                   f"data.validation_file={train}", "data.choice_prefix_column=id"])
    task = instantiate(cfg.data)
    assert type(task) is MultipleChoiceTask and task.choice_prefix_column == "id" and task.batch_size == 16
    cfg = compose_cfg("finetune", ["task=swag", "pretrained=/x", f"data_dir={SAMPLE}"])
    OmegaConf.resolve(cfg)
    assert (cfg.optimizer.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (2e-5, 16, 3)  # section 4.4
    task = instantiate(cfg.data)
    assert type(task) is SwagTask and task.files["dev"] == str(SAMPLE / "val.csv") and task.seed == cfg.seed
    assert compose_cfg("finetune", ["task=swag", "pretrained=/x"]).data.data_dir.endswith("/data/swag")


# -- 2. the head: parity with transformers and checkpoint interop ---------------------------------------------------
def mc_batch(vocab, b=2, k=3, s=8, seed=0):
    """(B, K, S) ids, token types and mask; three of the six sequences padded, each to another length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, k, s), generator=g)
    mask = torch.ones(b, k, s, dtype=torch.long)
    mask[0, 1, 6:] = 0
    mask[1, 0, 3:] = 0
    mask[1, 2, 5:] = 0
    types = torch.zeros_like(ids)
    types[..., 2:] = 1
    return ids * mask, types * mask, mask


def hf_twin(transformers, ours: BertForMultipleChoice):
    """transformers' BertForMultipleChoice holding our very tensors (no init, no copy): built on the meta device,
    our state dict assigned, its non-persistent buffers (position ids, ...) taken from a one-layer model."""
    hf_cfg = transformers.BertConfig(**{k: v for k, v in ours.config.to_dict().items() if k != "unpad"})
    with torch.device("meta"):
        hf = transformers.BertForMultipleChoice(hf_cfg)
    hf.load_state_dict(ours.state_dict(), strict=True, assign=True)
    small = transformers.BertForMultipleChoice(transformers.BertConfig(**{**hf_cfg.to_dict(), "num_hidden_layers": 1}))
    for name, buf in small.named_buffers():
        owner, _, attr = name.rpartition(".")
        setattr(hf.get_submodule(owner), attr, buf)
    assert not any(t.is_meta for t in [*hf.parameters(), *hf.buffers()])
    return hf.eval()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_head_parity_with_transformers_every_preset(preset):
    """Same weights: our logits (and loss) equal transformers' within 1e-5 on the padded path and on the unpadded
    one (`unpad=True`), with and without padding in the batch. The weights are random normals filled in directly:
    Google's truncated-normal init of BERT-large alone takes half a minute on two cores."""
    transformers = pytest.importorskip("transformers")
    h, layers, heads, inter = PRESETS[preset]
    cfg = BertConfig(vocab_size=1000, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter)
    with torch.device("meta"):
        ours = BertForMultipleChoice(cfg)
    ours.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            p.normal_(1.0 if name.endswith("LayerNorm.weight") else 0.0, 0.1 if "LayerNorm" in name else 0.02,
                      generator=g)
    ours.eval()
    hf = hf_twin(transformers, ours)
    ids, types, mask = mc_batch(1000)
    full = torch.ones_like(mask)
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        ref_full = hf(input_ids=ids, token_type_ids=types, attention_mask=full).logits
        ours.config.unpad = False
        torch.testing.assert_close(ours(ids, types, mask)["logits"], ref, atol=1e-5, rtol=1e-5)
        ours.config.unpad = True
        out = ours(ids, types, mask, labels=labels)
        assert out["logits"].shape == (2, 3)
        torch.testing.assert_close(out["logits"], ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["loss"], torch.nn.functional.cross_entropy(ref, labels), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(ids, types, full)["logits"], ref_full, atol=1e-5, rtol=1e-5)


def test_hf_multiple_choice_folder_loads_into_ours(tmp_path, minilm_tokenizer):
    transformers = pytest.importorskip("transformers")
    cfg = BertConfig(vocab_size=minilm_tokenizer.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=128)
    torch.manual_seed(0)
    hf = transformers.BertForMultipleChoice(transformers.BertConfig(
        **{k: v for k, v in cfg.to_dict().items() if k != "unpad"})).eval()
    hf.save_pretrained(str(tmp_path / "hf"))
    ck = checkpoints.resolve(tmp_path / "hf")
    assert ck.kind == "huggingface" and ck.head == "multiple_choice" and "labels" not in ck.info
    ours = BertForMultipleChoice(ck.config).eval()
    missing, unexpected = ours.load_state_dict(ck.state_dict, strict=False)
    assert not missing and not unexpected
    ids, types, mask = mc_batch(cfg.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, types, mask)["logits"],
                                   hf(input_ids=ids, token_type_ids=types, attention_mask=mask).logits,
                                   atol=1e-5, rtol=1e-5)


# -- 3. bad input: one line naming the file, the row and the fix ---------------------------------------------------
def _bad(case, tmp_path):
    """(train, dev, expected message) for one kind of bad input."""
    good = rows_k3()
    train = write(tmp_path / "train.jsonl", good)
    dev = tmp_path / "dev.jsonl"
    fix = "; fix the row, or set data.on_bad_row=skip to skip such rows"
    bad = [dict(r) for r in good[:3]]
    if case == "k_differs":
        bad[2]["choices"] = bad[2]["choices"][:2]
        msg = (f"{dev}: line 3: 2 choices, but the rows before have 3 (first: {train} line 1); every row needs the "
               f"same number of choices{fix}")
    elif case == "label_out_of_range":
        bad[1]["label"] = 3
        msg = f"{dev}: line 2: label 3 is out of range: the row has 3 choices, so the label must be 0..2{fix}"
    elif case == "label_not_integer":
        bad[2]["label"] = "B"
        msg = f"{dev}: line 3: label 'B' is not an integer; it must be the index of the right choice, 0..2{fix}"
    elif case == "label_fraction":
        bad[0]["label"] = 1.5
        msg = f"{dev}: line 1: label 1.5 is not an integer; it must be the index of the right choice, 0..2{fix}"
    elif case == "missing_choices_column":
        bad = [{"id": r["id"], "context": r["context"], "answers": r["choices"], "label": r["label"]} for r in bad]
        msg = (f"{dev}: no choices: expected a column 'choices' holding a list, or one column per choice (ending0, "
               f"ending1, ... or choice0, ... or option0, ...); columns found: ['id', 'context', 'answers', 'label']. "
               f"Set data.choices_column=NAME or data.choice_columns=[A,B,...]")
    elif case == "missing_label_column":
        bad = [{k: v for k, v in r.items() if k != "label"} for r in bad]
        msg = (f"{dev}: no label column 'label' (the index of the right choice); columns found: ['id', 'context', "
               f"'choices']. Set data.label_column=NAME")
    elif case == "empty_context":
        bad[1]["context"] = "  "
        msg = f"{dev}: line 2: empty context in column 'context'{fix}"
    elif case == "empty_choice":
        bad[0]["choices"][1] = ""
        msg = f"{dev}: line 1: empty choice (choice 1 of column 'choices'){fix}"
    elif case == "missing_file":
        dev = tmp_path / "nowhere" / "dev.jsonl"
        msg = (f"data file {dev} not found (looked in {dev.parent}); check data.train_file / data.validation_file / "
               f"data.test_file")
        return train, dev, msg
    elif case == "empty_file":
        dev.write_text("", encoding="utf-8")
        return train, dev, f"{dev}: the file is empty"
    write(dev, bad)
    return train, dev, msg


BAD = ["k_differs", "label_out_of_range", "label_not_integer", "label_fraction", "missing_choices_column",
       "missing_label_column", "empty_context", "empty_choice", "missing_file", "empty_file"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line(case, minilm_tokenizer, tmp_path):
    train, dev, msg = _bad(case, tmp_path)
    task = task_for(minilm_tokenizer, train, dev)
    with pytest.raises(TaskDataError) as e:
        task.prepare()
    assert str(e.value) == msg and "\n" not in msg


def test_bad_swag_files(minilm_tokenizer, tmp_path):
    shutil.copy(SAMPLE / "train.csv", tmp_path / "train.csv")
    with pytest.raises(TaskDataError) as e:
        SwagTask(data_dir=str(tmp_path))
    assert str(e.value) == (f"SWAG: no val.csv in {tmp_path} (looked for {tmp_path / 'val.csv'}); data_dir must hold "
                            f"SWAG's train.csv and val.csv (test.csv optional)")
    rows = read_csv(SAMPLE / "val.csv")
    with open(tmp_path / "val.csv", "w", newline="", encoding="utf-8") as f:  # a SWAG file without ending3
        w = csv.writer(f)
        w.writerow([c for c in rows[0] if c != "ending3"])
        w.writerows([[v for c, v in r.items() if c != "ending3"] for r in rows])
    task = SwagTask(data_dir=str(tmp_path))
    task.set_tokenizer(minilm_tokenizer)
    with pytest.raises(TaskDataError) as e:
        task.prepare()
    assert str(e.value) == (f"{tmp_path / 'val.csv'}: line 2: 3 choices, but the rows before have 4 (first: "
                            f"{tmp_path / 'train.csv'} line 2); every row needs the same number of choices; fix the "
                            f"row, or set data.on_bad_row=skip to skip such rows")


def test_on_bad_row_skip_and_unknown_test_labels(minilm_tokenizer, tmp_path, caplog):
    rows = rows_k3()
    rows[2]["label"] = 7
    train = write(tmp_path / "train.jsonl", rows)
    test_rows = [{"context": r["context"], "choices": r["choices"], "label": lab}
                 for r, lab in zip(rows, ["", -1, 1, None, 0, 2])]
    test = write(tmp_path / "test.jsonl", test_rows)
    task = task_for(minilm_tokenizer, train, train, test_file=str(test), on_bad_row="skip")
    task.prepare()
    assert task.features("train").row_ids == ["q0", "q1", "q3", "q4", "q5"]
    assert "skipped 1 bad row(s)" in caplog.text and "line 3: label 7 is out of range" in caplog.text
    assert task.features("test").gold == [None, None, 1, None, 0, 2] and task.features("test").labels is None


def test_hub_offline_fails_at_once_and_says_to_pass_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    hub_reachable.cache_clear()
    try:
        for task in (SwagTask(data_dir=str(tmp_path / "absent")), SwagTask(data_dir=str(SAMPLE), source="hub")):
            with pytest.raises(TaskDataError) as e:
                task.prepare()
            assert "Hugging Face hub is not reachable (offline); pass data_dir=FOLDER holding SWAG's train.csv and " \
                   "val.csv" in str(e.value)
        with pytest.raises(OfflineError, match="pass data.train_file="):
            MultipleChoiceTask(hub="some/dataset").prepare()
    finally:
        hub_reachable.cache_clear()


def test_swag_from_the_hub_when_there_is_no_folder(minilm_tokenizer, tmp_path, monkeypatch):
    """Online and no folder at data_dir: allenai/swag (regular) from the hub, its splits as the hub names them, and
    the test split's label -1 read as unknown. The hub reader is replaced by the sample's rows (tests are offline)."""
    from bert_pl.io import hub
    from bert_pl.tasks import multiple_choice

    files = {"train": "train.csv", "validation": "val.csv", "test": "test.csv"}
    calls = []

    def fake_hub_rows(name, config, split):
        calls.append((name, config, split))
        rows = read_csv(SAMPLE / files[split])
        for r in rows:
            r["label"] = int(r.get("label", -1))
        return list(rows[0]), ((i + 1, r) for i, r in enumerate(rows)), {}

    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    monkeypatch.setattr(multiple_choice, "read_hub_rows", fake_hub_rows)
    monkeypatch.setattr(SwagTask, "_hub_has", lambda self, split: True)
    task = SwagTask(data_dir=str(tmp_path / "absent"))
    task.set_tokenizer(minilm_tokenizer)
    task.prepare()
    assert calls == [("allenai/swag", "regular", s) for s in ("train", "validation", "test")]
    assert task.test_splits() == ["test"] and task.describe("dev") == "allenai/swag[regular/validation]"
    assert [len(task.features(s)) for s in ("train", "dev", "test")] == [60, 30, 10]
    assert task.features("test").gold == [None] * 10 and task.features("dev").gold[:3] == [
        int(r["label"]) for r in read_csv(SAMPLE / "val.csv")[:3]]


# -- 4. end to end through the real CLI ----------------------------------------------------------------------------
def finetune(pretrained, out, *extra):
    return run_cli(["finetune.py", "task=swag", f"pretrained={pretrained}", "logger=[]", f"hydra.run.dir={out}",
                    *extra])


@pytest.fixture(scope="module")
def swag_run(tiny_pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("swag") / "run"
    res = finetune(tiny_pretrained, out, f"data_dir={SAMPLE}", "trainer.max_epochs=1")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_swag_end_to_end(swag_run):
    out = swag_run
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "swag" and results["num_choices"] == 4 and results["batch_size"] == 16
    assert results["best"]["metric"] == "acc" and results["best"]["epoch"] == 0 and results["lr"] == 2e-5
    assert set(results["dev"]["dev"]) == {"acc"}
    assert results["dev"]["dev"]["acc"] == pytest.approx(results["history"][0]["dev"]["acc"])
    assert sorted(results["files"]) == [str(out / "predictions_dev.jsonl"), str(out / "predictions_test.jsonl")]
    dev, val = read_jsonl(out / "predictions_dev.jsonl"), read_csv(SAMPLE / "val.csv")
    assert [r["id"] for r in dev] == [str(i) for i in range(30)]
    assert [r["gold"] for r in dev] == [int(r["label"]) for r in val]
    assert all(len(r["probabilities"]) == 4 and abs(sum(r["probabilities"]) - 1) < 1e-4 for r in dev)
    assert all(r["label"] == int(np.argmax(r["probabilities"])) for r in dev)
    assert np.mean([r["label"] == r["gold"] for r in dev]) == pytest.approx(results["dev"]["dev"]["acc"])
    test = read_jsonl(out / "predictions_test.jsonl")
    assert [r["id"] for r in test] == [str(i) for i in range(10)] and all("gold" not in r for r in test)
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_finetuned_checkpoint_exports_to_transformers(swag_run, tmp_path, minilm_tokenizer):
    """`python -m bert_pl.export` (its main, in-process) on the fine-tuned checkpoint: transformers'
    BertForMultipleChoice loads the folder with no missing or unexpected keys and gives the same logits."""
    transformers = pytest.importorskip("transformers")
    from bert_pl import export

    src = swag_run / "checkpoints" / "last.ckpt"
    ck = checkpoints.resolve(src)
    assert ck.kind == "bert-pl" and ck.head == "multiple_choice"
    export.main([str(src), str(tmp_path / "hf")])
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["BertForMultipleChoice"] and "id2label" not in config
    hf, info = transformers.BertForMultipleChoice.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ours = BertForMultipleChoice(ck.config).eval()
    ours.load_state_dict(ck.state_dict, strict=True)
    task = SwagTask(data_dir=str(SAMPLE))
    task.set_tokenizer(minilm_tokenizer)
    batch = task.collator()([task.features("dev")[i] for i in range(5)])
    with torch.no_grad():
        torch.testing.assert_close(ours(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])["logits"],
                                   hf.eval()(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                             attention_mask=batch["attention_mask"]).logits, atol=1e-5, rtol=1e-5)
    assert checkpoints.resolve(tmp_path / "hf").head == "multiple_choice"  # and back


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_pretrained, tmp_path):
    data = tmp_path / "swag"
    data.mkdir()
    shutil.copy(SAMPLE / "train.csv", data / "train.csv")
    lines = (SAMPLE / "val.csv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3][: lines[3].rindex(",")] + ",4"  # the fourth line's label: 4 of 4 choices
    (data / "val.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    res = finetune(tiny_pretrained, out, f"data_dir={data}")
    assert res.returncode == 2, res.stderr[-3000:]
    assert res.stderr.strip().splitlines() == [
        f"error: {data / 'val.csv'}: line 4: label 4 is out of range: the row has 4 choices, so the label must be "
        f"0..3; fix the row, or set data.on_bad_row=skip to skip such rows"], res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert not (out / "results.json").exists() and not list(out.glob("predictions_*"))
    assert not (out / "checkpoints").exists()


# -- 5. it learns: MiniLM on the sample's 60 training rows, scored on the 30 held-out val rows ----------------------
@pytest.mark.slow
def test_minilm_learns_the_swag_sample(minilm_dir, tmp_path):
    out = tmp_path / "run"
    res = finetune(minilm_dir, out, f"data_dir={SAMPLE}", "trainer.max_epochs=3", "data.batch_size=8",
                   "optimizer.lr=5e-5")
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["dev"]["dev"]["acc"] >= 0.6, results["history"]  # chance: 0.25
