"""Exports: ONNX for the encoder with every head (equal to PyTorch within 1e-4 under onnxruntime), and the model
card of a Hugging Face export."""
import json

import numpy as np
import pytest
import torch

from bert_pl.model.heads import HEADS


@pytest.mark.parametrize("head", list(HEADS))
def test_onnx_equals_pytorch(head, tmp_path, tiny_checkpoint):
    ort = pytest.importorskip("onnxruntime")
    from bert_pl import export

    path, model = tiny_checkpoint(head)
    export.main([str(path), str(tmp_path / "onnx"), "--format", "onnx"])
    meta = json.loads((tmp_path / "onnx" / "bert_pl.json").read_text())
    assert meta["head"] == head and (tmp_path / "onnx" / "tokenizer.json").is_file()
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    per_example = len(HEADS[head].predictor_class().onnx_input_axes) == 3  # (batch, choices, sequence)
    for shape in ([2, 4, 19], [3, 2, 33]) if per_example else ([3, 21], [1, 40]):
        g = torch.Generator().manual_seed(sum(shape))
        ids = torch.randint(1000, 5000, shape, generator=g)
        mask = torch.ones(shape, dtype=torch.long)
        mask[..., shape[-1] - 5:] = 0 if shape[0] > 1 else 1  # padded rows in the batch
        mask[..., 0] = 1
        types = torch.zeros(shape, dtype=torch.long)
        types[..., shape[-1] // 2:] = 1
        got = session.run(None, {"input_ids": ids.numpy(), "token_type_ids": types.numpy(),
                                 "attention_mask": mask.numpy()})
        with torch.no_grad():
            for unpad in (False, True):
                model.config.unpad = unpad
                ref = model(ids, types, mask)
                model.config.unpad = False  # the fixture's model is shared
                for name, value in zip(meta["outputs"], got):
                    expected = ref[name].numpy()
                    assert value.shape == expected.shape, name
                    # per-token outputs: compare real tokens (padding positions differ on the unpadded path)
                    per_token = tuple(value.shape[:mask.dim()]) == tuple(mask.shape)
                    keep = mask.bool().numpy() if per_token else slice(None)
                    a, b = value[keep], expected[keep]
                    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=f"{head} {name} unpad={unpad}")


def _run_with_results(tmp_path, tiny_checkpoint, **changes):
    import shutil

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = shutil.copy(tiny_checkpoint("classification")[0], run / "checkpoints" / "epoch1.ckpt")
    results = {"task": "mrpc", "pretrained": "google-bert/bert-base-uncased", "lr": 5e-5, "batch_size": 32,
               "max_epochs": 3, "seed": 42, "dataset": {"name": "GLUE MRPC", "type": "nyu-mll/glue", "config": "mrpc",
                                                        "language": "en"},
               "best": {"metric": "acc_and_f1", "value": 0.81, "epoch": 2, "checkpoint": str(path)},
               "dev": {"dev": {"acc": 0.8, "f1": 0.82}}, "degenerate": False,
               "overrides": ["task=mrpc", "pretrained=google-bert/bert-base-uncased"], **changes}
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_hf_export_has_a_model_card_the_hub_reads(tmp_path, tiny_checkpoint):
    """The card's metadata as huggingface_hub itself parses it (ModelCard: YAML front matter, model-index ->
    eval results), and the text a person reads."""
    import transformers
    from huggingface_hub import ModelCard

    from bert_pl import export

    run = _run_with_results(tmp_path, tiny_checkpoint)
    export.main([str(run), str(tmp_path / "hf")])
    card = ModelCard.load(tmp_path / "hf" / "README.md")
    data = card.data
    assert data.library_name == "bert-pl" and data.license == "apache-2.0" and data.pipeline_tag == \
        "text-classification"
    assert data.base_model == "google-bert/bert-base-uncased" and data.datasets == ["nyu-mll/glue"]
    assert data.language == ["en"] and sorted(data.metrics) == ["accuracy", "f1"]
    results = {(r.metric_type, r.metric_value, r.dataset_type, r.dataset_config, r.dataset_split, r.task_type)
               for r in data.eval_results}
    assert results == {("accuracy", 0.8, "nyu-mll/glue", "mrpc", "validation", "text-classification"),
                       ("f1", 0.82, "nyu-mll/glue", "mrpc", "validation", "text-classification")}
    text = card.text
    assert "Task: mrpc" in text and "python finetune.py task=mrpc pretrained=google-bert/bert-base-uncased" in text \
        and "L0, L1, L2" in text and '"f1": 0.82' in text and "looks untrained" not in text
    hf = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "hf"))
    assert hf.config.id2label == {0: "L0", 1: "L1", 2: "L2"}


def test_a_degenerate_run_is_flagged_in_its_card_and_a_local_base_is_not_linked(tmp_path, tiny_checkpoint):
    from huggingface_hub import ModelCard

    from bert_pl import export

    run = _run_with_results(tmp_path, tiny_checkpoint, degenerate=True, pretrained=str(tmp_path),
                            degenerate_reason="every dev prediction is the class 1", dataset={})
    export.main([str(run), str(tmp_path / "hf"), "--license", "mit"])
    card = ModelCard.load(tmp_path / "hf" / "README.md")
    assert "Warning: this model looks untrained** (every dev prediction is the class 1)" in card.text
    assert card.data.license == "mit" and card.data.base_model is None and card.data.datasets is None


def test_push_to_hub_uploads_the_export_and_offline_says_so_in_one_line(tmp_path, tiny_checkpoint, monkeypatch,
                                                                         capsys):
    """--push-to-hub against a stand-in for huggingface_hub.HfApi (no network in tests), and with the hub off."""
    import huggingface_hub

    from bert_pl import export

    calls = []

    class StandIn:
        def __init__(self, endpoint=None):
            calls.append(("endpoint", endpoint))

        def create_repo(self, repo_id, repo_type, exist_ok):
            calls.append(("create", repo_id, repo_type, exist_ok))

        def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
            calls.append(("upload", repo_id, sorted(p.name for p in tmp_path.joinpath("hf").iterdir())))

    path = tiny_checkpoint("classification")[0]
    with pytest.raises(SystemExit) as stop:  # conftest switches the hub off (HF_HUB_OFFLINE=1)
        export.main([str(path), str(tmp_path / "hf"), "--push-to-hub", "me/tiny"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "switched off here (HF_HUB_OFFLINE=1)" in err and err.count("\n") == 1
    assert (tmp_path / "hf" / "config.json").is_file()  # the export is kept
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")
    monkeypatch.setattr(huggingface_hub, "HfApi", StandIn)
    export.main([str(path), str(tmp_path / "hf"), "--push-to-hub", "me/tiny"])
    assert calls[0] == ("endpoint", "https://hub.example") and calls[1] == ("create", "me/tiny", "model", True)
    assert calls[2][:2] == ("upload", "me/tiny") and {"README.md", "config.json", "model.safetensors"} <= set(calls[2][2])
    assert "to https://hub.example/me/tiny" in capsys.readouterr().out


@pytest.mark.parametrize("head", list(HEADS))
def test_onnx_export_reloads_with_bert_pl_load_and_predicts_the_same(head, tmp_path, tiny_checkpoint):
    """Each head's own example inputs (its Predictor's) give the same results from the export under onnxruntime as
    from the checkpoint, through the head's default use (predict, or fill_mask for a pretraining checkpoint)."""
    pytest.importorskip("onnxruntime")
    import bert_pl
    from bert_pl import export

    path, _ = tiny_checkpoint(head)
    export.main([str(path), str(tmp_path / "onnx"), "--format", "onnx"])
    ours, onnx = bert_pl.load(path), bert_pl.load(tmp_path / "onnx")
    assert onnx.head == head and onnx.labels == ours.labels and onnx.max_seq_length == ours.max_seq_length

    def same(a, b):  # equal structure and labels; scores within the exports' 1e-4
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for k in a:
                same(a[k], b[k])
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)
        elif isinstance(a, float):
            assert a == pytest.approx(b, abs=1e-4)
        else:
            assert a == b

    family = HEADS[head].predictor_class()
    use = family.default_mode if family.default_mode in ("predict", "fill_mask") else "predict"
    same(getattr(ours, use)(family.example_inputs), getattr(onnx, use)(family.example_inputs))
    if family.default_mode == "fill_mask":  # a bare encoder's export holds the MLM head, not the layers to pool
        with pytest.raises(bert_pl.inference.model.PredictError, match="ONNX export.*load the checkpoint"):
            onnx.embed(["a sentence"])
