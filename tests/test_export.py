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


def test_hf_export_has_a_model_card_from_the_run(tmp_path, tiny_checkpoint):
    import shutil

    import transformers

    from bert_pl import export

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = shutil.copy(tiny_checkpoint("classification")[0], run / "checkpoints" / "epoch1.ckpt")
    results = {"task": "mrpc", "pretrained": "/models/base", "lr": 5e-5, "batch_size": 32, "max_epochs": 3, "seed": 42,
               "best": {"metric": "acc_and_f1", "value": 0.81, "epoch": 2, "checkpoint": str(path)},
               "dev": {"dev": {"acc": 0.8, "f1": 0.82}}, "overrides": ["task=mrpc", "pretrained=/models/base"]}
    (run / "results.json").write_text(json.dumps(results))
    export.main([str(run), str(tmp_path / "hf")])
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "Task: mrpc" in card and "`/models/base`" in card and "python finetune.py task=mrpc pretrained=/models/base" \
        in card and "L0, L1, L2" in card and '"f1": 0.82' in card
    hf = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "hf"))
    assert hf.config.id2label == {0: "L0", 1: "L1", 2: "L2"}


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
