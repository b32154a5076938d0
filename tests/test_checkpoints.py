import json
import logging
import re

import pytest
import torch

from bert_pl.io import checkpoints
from bert_pl.io import tokenization
from bert_pl.io.checkpoints import Checkpoint, CheckpointError, resolve, save_huggingface, save_ours
from bert_pl.model.bert import BertConfig, BertForPreTraining
from bert_pl.model.heads import BertForQuestionAnswering, BertForSequenceClassification
from conftest import run_cli, shared

transformers = pytest.importorskip("transformers")


def glue_pairs(n=24):
    rows = shared("glue", "MRPC", "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[1:n + 1]
    return [tuple(r.split("\t")[3:5]) for r in rows]


def encode_batch(tok, pairs):
    tok = tokenization.from_json_string(tok.to_str())
    tok.enable_truncation(128)
    encs = tok.encode_batch(pairs)
    width = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), width, dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n], types[i, :n], mask[i, :n] = torch.tensor(e.ids), torch.tensor(e.type_ids), 1
    return ids, types, mask


def same_weights(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_minilm_hidden_states_match_transformers(minilm_dir):
    ckpt = resolve(minilm_dir)
    assert ckpt.kind == "huggingface" and ckpt.config.hidden_size == 384 and ckpt.config.num_hidden_layers == 6
    from bert_pl.cli.extract_features import load_encoder

    ours, tok = load_encoder(str(minilm_dir))
    ref = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    ids, types, mask = encode_batch(tok, glue_pairs())
    with torch.no_grad():
        a = ours(ids, types, mask, output_hidden_states=True)["hidden_states"]
        b = ref(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True).hidden_states
    real = mask.bool()
    for layer in range(len(b)):
        torch.testing.assert_close(a[layer][real], b[layer][real], atol=1e-4, rtol=1e-4)


def test_extract_features_cli_matches_transformers(minilm_dir, tmp_path):
    lines = ["The company said it expects results to improve.", "Who wrote it? ||| Nobody knows."]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    res = run_cli(["-m", "bert_pl.cli.extract_features", "--pretrained", str(minilm_dir), "--input_file",
                   str(tmp_path / "in.txt"), "--output_file", str(tmp_path / "out.jsonl"), "--layers", "-1,-2,-3,-4"])
    assert res.returncode == 0, res.stderr
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["linex_index"] for r in records] == [0, 1]
    ref = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    hf_tok = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))
    for line, rec in zip(lines, records):
        parts = [p.strip() for p in line.split("|||")]
        enc = hf_tok(*parts, return_tensors="pt")
        with torch.no_grad():
            hs = ref(**enc, output_hidden_states=True).hidden_states
        assert [f["token"] for f in rec["features"]] == hf_tok.convert_ids_to_tokens(enc["input_ids"][0])
        for t, feat in enumerate(rec["features"]):
            assert [lay["index"] for lay in feat["layers"]] == [-1, -2, -3, -4]
            for lay in feat["layers"]:
                torch.testing.assert_close(torch.tensor(lay["values"]), hs[lay["index"]][0, t], atol=1e-4, rtol=0)


def test_export_pretraining_loads_in_transformers(tiny_pretrained, tmp_path):
    ckpt = resolve(tiny_pretrained)
    out = save_huggingface(ckpt, tmp_path / "hf")
    hf, info = transformers.BertForPreTraining.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf_tok = transformers.BertTokenizerFast.from_pretrained(str(out))
    ours_tok = tokenization.from_json_string(ckpt.tokenizer_json)
    for a, b in glue_pairs(10):
        assert hf_tok(a, b)["input_ids"] == ours_tok.encode(a, b).ids
    model = BertForPreTraining(ckpt.config).eval()
    checkpoints.load_into(model, tiny_pretrained)
    ids, types, mask = encode_batch(ours_tok, glue_pairs(4))
    with torch.no_grad():
        r = hf.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask)
        o = model(ids, types, mask)
    torch.testing.assert_close(o["mlm_logits"][mask.bool()], r.prediction_logits[mask.bool()], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o["nsp_logits"], r.seq_relationship_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("head", ["classification", "span"])
def test_export_finetuned_heads(tiny_pretrained, tmp_path, head):
    base = resolve(tiny_pretrained)
    model = BertForSequenceClassification(base.config, 3) if head == "classification" else \
        BertForQuestionAnswering(base.config)
    checkpoints.load_into(model, tiny_pretrained)
    info = {"labels": ["contradiction", "entailment", "neutral"]} if head == "classification" else {}
    ck = Checkpoint(base.config, model.state_dict(), base.tokenizer_json, "test", "bert-pl", info)
    assert ck.head == head
    out = save_huggingface(ck, tmp_path / head)
    cls = transformers.BertForSequenceClassification if head == "classification" else \
        transformers.BertForQuestionAnswering
    hf, info = cls.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids, types, mask = encode_batch(tokenization.from_json_string(base.tokenizer_json), glue_pairs(3))
    with torch.no_grad():
        o, r = model.eval()(ids, types, mask), hf.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask)
    if head == "classification":
        torch.testing.assert_close(o["logits"], r.logits, atol=1e-5, rtol=1e-5)
        assert hf.config.id2label[1] == "entailment"
    else:
        torch.testing.assert_close(o["start_logits"][mask.bool()], r.start_logits[mask.bool()], atol=1e-5, rtol=1e-5)


def test_roundtrip_ours_hf_ours_bit_identical(tiny_pretrained, tmp_path):
    a = resolve(tiny_pretrained)
    save_huggingface(a, tmp_path / "hf")
    b = resolve(tmp_path / "hf")
    save_ours(b, tmp_path / "again.ckpt")
    c = resolve(tmp_path / "again.ckpt")
    same_weights(a.state_dict, b.state_dict)
    same_weights(a.state_dict, c.state_dict)
    assert c.tokenizer_json == a.tokenizer_json or tokenization.from_json_string(c.tokenizer_json).get_vocab() == \
        tokenization.from_json_string(a.tokenizer_json).get_vocab()


def test_convert_cli(tiny_pretrained, tmp_path):
    res = run_cli(["-m", "bert_pl.export", str(tiny_pretrained), str(tmp_path / "hf")])
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "hf" / "model.safetensors").is_file() and (tmp_path / "hf" / "vocab.txt").is_file()
    res = run_cli(["-m", "bert_pl.export", str(tmp_path / "hf"), str(tmp_path / "back.ckpt")])
    assert res.returncode == 0, res.stderr
    same_weights(resolve(tiny_pretrained).state_dict, resolve(tmp_path / "back.ckpt").state_dict)


def ours_to_tf_name(key: str) -> str:
    special = {"cls.predictions.bias": "cls/predictions/output_bias",
               "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
               "cls.seq_relationship.bias": "cls/seq_relationship/output_bias"}
    if key in special:
        return special[key]
    name = re.sub(r"layer\.(\d+)", r"layer_\1", key)
    if "_embeddings.weight" in name:
        name = name[: -len(".weight")]
    elif "LayerNorm" in name:
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    else:
        name = name.replace(".weight", ".kernel")
    return name.replace(".", "/")


def write_google_tf_checkpoint(folder, state_dict, config: BertConfig, vocab_src):
    """A real TF checkpoint written by TensorFlow's own Saver, with Google's variable names and layouts."""
    tf = pytest.importorskip("tensorflow")
    folder.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default():
        for key, value in state_dict.items():
            arr = value.numpy()
            name = ours_to_tf_name(key)
            if name.endswith("/kernel"):
                arr = arr.T  # TF dense kernels are (in, out)
            tf.compat.v1.get_variable(name, initializer=tf.constant(arr))
        tf.compat.v1.get_variable("global_step", initializer=tf.constant(7, dtype=tf.int64))
        tf.compat.v1.get_variable("bert/embeddings/word_embeddings/adam_m", initializer=tf.constant(0.0))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(folder / "bert_model.ckpt"), write_meta_graph=False)
    cfg = {k: v for k, v in config.to_dict().items() if k != "unpad"}
    (folder / "bert_config.json").write_text(json.dumps(cfg))
    (folder / "vocab.txt").write_text(vocab_src.read_text(encoding="utf-8"), encoding="utf-8")


def test_google_tf_checkpoint_roundtrip(tiny_pretrained, minilm_dir, tmp_path):
    original = resolve(tiny_pretrained)
    tf_dir = tmp_path / "uncased_L-2_H-64_A-2"
    write_google_tf_checkpoint(tf_dir, original.state_dict, original.config, minilm_dir / "vocab.txt")
    assert (tf_dir / "bert_model.ckpt.index").is_file()
    from_tf = resolve(tf_dir)
    assert from_tf.kind == "tensorflow" and from_tf.config.hidden_size == 64
    same_weights(original.state_dict, from_tf.state_dict)  # TF -> ours, bit-identical
    save_huggingface(from_tf, tmp_path / "hf")
    same_weights(original.state_dict, resolve(tmp_path / "hf").state_dict)  # -> HF, bit-identical
    hf, info = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tok = tokenization.from_json_string(from_tf.tokenizer_json)
    assert tokenization.lowercase_of(tok)  # "uncased" in Google's folder name


def test_missing_head_initialised_and_reported(minilm_dir, caplog):
    model = BertForSequenceClassification(resolve(minilm_dir).config, 2)
    with caplog.at_level(logging.INFO, logger="bert_pl.io.checkpoints"):
        checkpoints.load_into(model, minilm_dir)
    assert any("newly initialised" in r.message and "classifier" in r.message for r in caplog.records)


def test_no_recognisable_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="no recognisable checkpoint"):
        resolve(tmp_path)


def test_config_disagrees_with_weights(tiny_pretrained, tmp_path):
    save_huggingface(resolve(tiny_pretrained), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 999
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config.*intermediate.*\(999, 64\).*\(128, 64\)"):
        resolve(tmp_path)


def test_truncated_weights_file(tiny_pretrained, tmp_path):
    save_huggingface(resolve(tiny_pretrained), tmp_path)
    w = tmp_path / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors.*corrupted or truncated"):
        resolve(tmp_path)
    ck = tmp_path / "x.ckpt"
    ck.write_bytes(tiny_pretrained.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"x.ckpt.*corrupted, truncated"):
        resolve(ck)


def test_vocab_larger_than_embeddings(tiny_pretrained, tmp_path):
    save_huggingface(resolve(tiny_pretrained), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "model.safetensors"))
    for k in ("bert.embeddings.word_embeddings.weight", "cls.predictions.bias"):
        sd[k] = sd[k][:1000].clone()
    cfg["vocab_size"] = 1000
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"vocabulary has 30522 tokens but the embeddings only 1000 rows"):
        resolve(tmp_path)


def test_pickled_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        resolve(folder)


def test_hub_id_offline_says_what_to_pass():
    from bert_pl.io.hub import OfflineError

    with pytest.raises(OfflineError, match="pass pretrained=/path/to/a/local/folder"):
        resolve("google-bert/bert-base-uncased")
