"""ONNX exports for deployment: `--optimize` (onnxruntime's transformer optimizer fuses the graph) and `--quantize`
(dynamic int8); the folder's config.json; bad flag combinations and a missing onnxruntime in one line. The plain
export's equality with PyTorch is tests/test_export.py's."""
import json

import numpy as np
import pytest
import torch

from bert_pl.model.heads import HEADS

ort = pytest.importorskip("onnxruntime")


def _export(tiny_checkpoint, head, folder, *flags):
    from bert_pl import export

    path, model = tiny_checkpoint(head)
    export.main([str(path), str(folder), "--format", "onnx", *flags])
    return model, json.loads((folder / "bert_pl.json").read_text())


def _inputs(shape, seed):
    """ids, token types (a pair) and a mask with right padding and, in the first row, padding on the left and a
    hole: the optimized graph keeps the raw 0/1 mask, so any mask gives PyTorch's numbers."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    if shape[0] > 1:
        mask[1:, ..., shape[-1] - 5:] = 0
        mask[0, ..., :2] = 0
        mask[0, ..., 7] = 0
    types = torch.zeros(shape, dtype=torch.long)
    types[..., shape[-1] // 2:] = 1
    return ids, types, mask


def test_optimize_fuses_attention_layer_norm_gelu_and_embeddings(tmp_path, tiny_checkpoint, capsys):
    from bert_pl.io import onnx

    _, meta = _export(tiny_checkpoint, "classification", tmp_path / "opt", "--optimize")
    layers = 2  # conftest's tiny encoder
    in_file = onnx.fused_counts(tmp_path / "opt" / "model.onnx")  # the file itself, not only what metadata says
    assert meta["onnx"]["fused"] == in_file and meta["onnx"]["optimized"] is True
    assert in_file["Attention"] + in_file["MultiHeadAttention"] == layers
    assert in_file["SkipLayerNormalization"] == 2 * layers and in_file["BiasGelu"] == layers
    assert in_file["EmbedLayerNormalization"] == 1
    out = capsys.readouterr().out
    assert "optimized" in out and "Attention 2" in out and "SkipLayerNormalization 4" in out

    import transformers  # config.json: the Hugging Face config of the model, labels included

    config = transformers.AutoConfig.from_pretrained(tmp_path / "opt")
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == \
        ("bert", layers, 64, 2)
    assert config.id2label == {0: "L0", 1: "L1", 2: "L2"}


@pytest.mark.parametrize("head", list(HEADS))
def test_optimized_onnx_equals_pytorch(head, tmp_path, tiny_checkpoint):
    model, meta = _export(tiny_checkpoint, head, tmp_path / "opt", "--optimize")
    assert meta["onnx"]["fused"]["Attention"] == 2, meta["onnx"]["fused"]  # every head's encoder fuses
    session = ort.InferenceSession(str(tmp_path / "opt" / "model.onnx"), providers=["CPUExecutionProvider"])
    takes = {i.name for i in session.get_inputs()}
    per_example = len(HEADS[head].predictor_class().onnx_input_axes) == 3  # (batch, choices, sequence)
    for shape in ([2, 3, 19],) if per_example else ([3, 21], [1, 40]):
        ids, types, mask = _inputs(shape, sum(shape))
        feed = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        got = session.run(None, {k: v.numpy() for k, v in feed.items() if k in takes})
        with torch.no_grad():
            ref = model(ids, types, mask)
        for name, value in zip(meta["outputs"], got):
            expected = ref[name].numpy()
            assert value.shape == expected.shape, name
            per_token = tuple(value.shape[:mask.dim()]) == tuple(mask.shape)
            keep = mask.bool().numpy() if per_token else slice(None)  # padding positions' outputs are noise
            np.testing.assert_allclose(value[keep], expected[keep], atol=1e-4, rtol=1e-4, err_msg=f"{head} {name}")


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "plain"])
def test_int8_export_loads_and_predicts(optimize, tmp_path, tiny_checkpoint):
    """Runs and answers in the head's shape (agreement with fp32 on a real model: benchmarks/onnx_deploy.py)."""
    import onnx as onnx_lib

    import bert_pl

    flags = ["--optimize", "--quantize"] if optimize else ["--quantize"]
    _, meta = _export(tiny_checkpoint, "classification", tmp_path / "int8", *flags)
    assert meta["onnx"]["quantized"] == "int8-dynamic"
    ops = {n.op_type for n in onnx_lib.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert ("QAttention" in ops) == optimize and "MatMulInteger" in ops
    model = bert_pl.load(tmp_path / "int8")
    texts = [("The cat sat on the mat.", "A cat was sitting."), ("A man plays a guitar.", "Someone plays music."),
             ("Short.", "Also short.")]
    results = model.predict(texts)
    assert len(results) == 3
    for r in results:
        assert r["label"] in ("L0", "L1", "L2") and sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)


def test_optimized_export_reloads_with_bert_pl_load(tmp_path, tiny_checkpoint):
    import bert_pl

    path, _ = tiny_checkpoint("classification")
    _export(tiny_checkpoint, "classification", tmp_path / "opt", "--optimize")
    texts = ["The cat sat on the mat.", "A man plays a guitar.", "Short."]
    ours, onnx = bert_pl.load(path).predict(texts), bert_pl.load(tmp_path / "opt").predict(texts)
    assert [r["label"] for r in ours] == [r["label"] for r in onnx]
    for a, b in zip(ours, onnx):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)


@pytest.mark.parametrize("flags", [["--optimize"], ["--quantize"], ["--format", "hf", "--optimize"]])
def test_optimize_and_quantize_need_the_onnx_format(flags, tmp_path, tiny_checkpoint, capsys):
    from bert_pl import export

    with pytest.raises(SystemExit) as e:
        export.main([str(tiny_checkpoint("classification")[0]), str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--format onnx" in err[-1] and flags[-1] in err[-1]
    assert not (tmp_path / "out").exists()


def test_missing_onnxruntime_is_one_line(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import sys

    from bert_pl import export

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(SystemExit) as e:
        export.main([str(tiny_checkpoint("classification")[0]), str(tmp_path / "out"), "--format", "onnx",
                     "--optimize"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "pip install onnxruntime" in err[0] and "--optimize" in err[0]
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_an_onnx_folder_given_as_a_checkpoint_is_named_as_such(tmp_path, tiny_checkpoint, capsys):
    """Its config.json would make it look like a Hugging Face folder without weights."""
    from bert_pl import export

    _export(tiny_checkpoint, "classification", tmp_path / "onnx")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        export.main([str(tmp_path / "onnx"), str(tmp_path / "again"), "--format", "onnx"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "is an ONNX export" in err[0] and "bert_pl.load" in err[0]
