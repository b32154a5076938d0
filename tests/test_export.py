"""Exports: ONNX for the encoder with every head (equal to PyTorch within 1e-4 under onnxruntime), and the model
card of a Hugging Face export."""
import json

import numpy as np
import pytest
import torch

from bert_pl.io.checkpoints import Checkpoint, save_ours
from bert_pl.model.bert import BertConfig, BertForPreTraining
from bert_pl.model.heads import (BertForMultipleChoice, BertForQuestionAnswering, BertForSequenceClassification,
                                 BertForTokenClassification)

HEADS = {"pretraining": (BertForPreTraining, {}), "classification": (BertForSequenceClassification, {"num_labels": 3}),
         "span": (BertForQuestionAnswering, {}), "token_classification": (BertForTokenClassification, {"num_labels": 5}),
         "multiple_choice": (BertForMultipleChoice, {})}


def tiny(tmp_path, tokenizer, head):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128)
    cls, kwargs = HEADS[head]
    model = cls(cfg, **kwargs).eval()
    info = {"head": head}
    if "num_labels" in kwargs:
        info["labels"] = [f"L{i}" for i in range(kwargs["num_labels"])]
    return save_ours(Checkpoint(cfg, model.state_dict(), tokenizer.to_str(), "test", "bert-pl", info),
                     tmp_path / f"{head}.ckpt"), model


@pytest.mark.parametrize("head", list(HEADS))
def test_onnx_equals_pytorch(head, tmp_path, minilm_tokenizer):
    ort = pytest.importorskip("onnxruntime")
    from bert_pl import export

    path, model = tiny(tmp_path, minilm_tokenizer, head)
    export.main([str(path), str(tmp_path / "onnx"), "--format", "onnx"])
    meta = json.loads((tmp_path / "onnx" / "bert_pl.json").read_text())
    assert meta["head"] == head and (tmp_path / "onnx" / "tokenizer.json").is_file()
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    for shape in ([3, 21], [1, 40]) if head != "multiple_choice" else ([2, 4, 19], [3, 2, 33]):
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
                for name, value in zip(meta["outputs"], got):
                    expected = ref[name].numpy()
                    assert value.shape == expected.shape, name
                    # per-token outputs: compare real tokens (padding positions differ on the unpadded path)
                    per_token = tuple(value.shape[:mask.dim()]) == tuple(mask.shape)
                    keep = mask.bool().numpy() if per_token else slice(None)
                    a, b = value[keep], expected[keep]
                    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=f"{head} {name} unpad={unpad}")


def test_hf_export_has_a_model_card_from_the_run(tmp_path, minilm_tokenizer):
    import transformers

    from bert_pl import export

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path, _ = tiny(run / "checkpoints", minilm_tokenizer, "classification")
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


PREDICT_INPUTS = {
    "classification": [("The cat sat.", "A cat was sitting."), ("Stocks fell.", "Markets rose sharply today.")],
    "token_classification": ["EU rejects German call to boycott British lamb .", "Peter Blackburn"],
    "span": [{"question": "Who sat?", "context": "The cat sat on the mat while the dog slept."}],
    "multiple_choice": [{"context": "She opened the umbrella", "choices": ["because it rained.", "and it flew.",
                                                                          "to eat it."]}],
}


@pytest.mark.parametrize("head", list(HEADS))
def test_onnx_export_reloads_with_bert_pl_load_and_predicts_the_same(head, tmp_path, minilm_tokenizer):
    pytest.importorskip("onnxruntime")
    import bert_pl
    from bert_pl import export

    path, _ = tiny(tmp_path, minilm_tokenizer, head)
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

    if head == "pretraining":
        same(ours.fill_mask("Paris is the [MASK] of [MASK].", top_k=3),
             onnx.fill_mask("Paris is the [MASK] of [MASK].", top_k=3))
        with pytest.raises(bert_pl.inference.model.PredictError, match="ONNX export.*load the checkpoint"):
            onnx.embed(["a sentence"])
    else:
        same(ours.predict(PREDICT_INPUTS[head]), onnx.predict(PREDICT_INPUTS[head]))
