import pytest
import torch

from bert_pl.model.bert import BertConfig, BertForPreTraining, model_flops_per_token
from bert_pl.model.heads import BertForQuestionAnswering, BertForSequenceClassification

PRESETS = {  # (hidden, layers, heads, intermediate): Google's published sizes
    "bert_tiny": (128, 2, 2, 512), "bert_mini": (256, 4, 4, 1024), "bert_small": (512, 4, 8, 2048),
    "bert_medium": (512, 8, 8, 2048), "bert_base": (768, 12, 12, 3072), "bert_large": (1024, 24, 16, 4096),
}


def small_config(**kw):
    base = dict(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    base.update(kw)
    return BertConfig(**base)


def batch(vocab=500, b=3, s=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    mask[1, 15:] = 0
    mask[2, 5:] = 0
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    return ids, types * mask, mask


def test_shapes_and_tied_decoder():
    cfg = small_config()
    m = BertForPreTraining(cfg).eval()
    ids, types, mask = batch()
    out = m(ids, types, mask)
    assert out["mlm_logits"].shape == (3, 24, 500)
    assert out["nsp_logits"].shape == (3, 2)
    assert out["pooled_output"].shape == (3, 64)
    # the decoder is the word-embedding matrix itself, not a copy
    assert m.cls.predictions.word_embeddings[0].weight is m.bert.embeddings.word_embeddings.weight
    assert "cls.predictions.decoder.weight" not in m.state_dict()
    assert m.cls.predictions.bias.shape == (500,)


def test_truncated_normal_init():
    m = BertForPreTraining(small_config(hidden_size=128, intermediate_size=512))
    w = m.bert.encoder.layer[0].intermediate.dense.weight
    assert w.abs().max() <= 0.04 + 1e-6  # truncated at 2 std
    assert 0.015 < w.std() < 0.02  # a normal(0.02) truncated at 2 std has std ~0.0176
    assert torch.all(m.bert.encoder.layer[0].intermediate.dense.bias == 0)
    assert torch.all(m.bert.embeddings.LayerNorm.weight == 1)


@pytest.mark.parametrize("layer_norm_position", ["post", "pre"])
@pytest.mark.parametrize("attention", ["sdpa", "varlen"])
def test_unpad_equals_padded(attention, layer_norm_position):
    torch.manual_seed(0)
    m = BertForPreTraining(small_config(layer_norm_position=layer_norm_position)).eval()
    ids, types, mask = batch()
    with torch.no_grad():
        ref = m(ids, types, mask)
        m.config.unpad, m.config.attention = True, attention
        fast = m(ids, types, mask)
    real = mask.bool()
    torch.testing.assert_close(fast["mlm_logits"][real], ref["mlm_logits"][real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast["nsp_logits"], ref["nsp_logits"], atol=1e-5, rtol=1e-5)


def test_unpad_gradients_match():
    torch.manual_seed(0)
    cfg = small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids, types, mask = batch()
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    grads = []
    for unpad, attention in ((False, "sdpa"), (True, "sdpa"), (True, "varlen")):
        torch.manual_seed(0)
        m = BertForPreTraining(small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, unpad=unpad,
                                            attention=attention))
        loss = m(ids, types, mask, mlm_labels=labels, next_sentence_label=torch.tensor([0, 1, 0]))["loss"]
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    assert cfg.hidden_dropout_prob == 0.0
    for name in grads[0]:
        for other in grads[1:]:
            torch.testing.assert_close(other[name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_mlm_gather_equals_full_head():
    torch.manual_seed(0)
    m = BertForPreTraining(small_config()).eval()
    ids, types, mask = batch()
    positions = torch.tensor([[1, 4, 7], [2, 3, 0], [1, 0, 0]])
    labels = torch.tensor([[10, 11, 12], [13, 14, -100], [15, -100, -100]])
    full_labels = torch.full_like(ids, -100)
    for b in range(3):
        for p, lab in zip(positions[b], labels[b]):
            if lab != -100:
                full_labels[b, p] = lab
    with torch.no_grad():
        gathered = m(ids, types, mask, mlm_positions=positions, mlm_labels=labels)
        full = m(ids, types, mask, mlm_labels=full_labels)
    torch.testing.assert_close(gathered["mlm_loss"], full["mlm_loss"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gathered["mlm_logits"][0, 1], full["mlm_logits"][0, 4])


def test_heads():
    cfg = small_config()
    ids, types, mask = batch()
    clf = BertForSequenceClassification(cfg, num_labels=3)
    out = clf(ids, types, mask, labels=torch.tensor([0, 2, 1]))
    assert out["logits"].shape == (3, 3) and out["loss"].ndim == 0
    reg = BertForSequenceClassification(cfg, num_labels=1)
    assert reg(ids, types, mask, labels=torch.tensor([0.5, 2.0, 4.5]))["loss"] > 0
    qa = BertForQuestionAnswering(cfg)
    out = qa(ids, types, mask, start_positions=torch.tensor([1, 2, 3]), end_positions=torch.tensor([2, 2, 4]))
    assert out["start_logits"].shape == (3, 24) and qa.bert.pooler is None


def test_no_nsp_head():
    m = BertForPreTraining(small_config(), nsp=False)
    ids, types, mask = batch()
    out = m(ids, types, mask, mlm_labels=torch.where(mask.bool(), ids, -100))
    assert "nsp_logits" not in out and out["loss"] is out["mlm_loss"]
    assert not any(k.startswith("cls.seq_relationship") for k in m.state_dict())


def test_sequence_longer_than_positions_is_a_clear_error():
    m = BertForPreTraining(small_config(max_position_embeddings=16))
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        m(torch.ones(1, 20, dtype=torch.long))


def test_bad_config():
    with pytest.raises(ValueError, match="not a multiple"):
        BertConfig(hidden_size=100, num_attention_heads=12)


def test_flops_formula_counts_base():
    cfg = BertConfig()
    # 6 * 85M encoder matmul weights dominates; the attention term is 12*L*H*S
    f = model_flops_per_token(cfg, 128, mlm_predictions_per_token=0.15)
    assert 6 * cfg.num_parameters_dense < f < 6 * 110e6


@pytest.mark.parametrize("preset", [pytest.param(p, marks=pytest.mark.slow) if p == "bert_large" else p
                                    for p in PRESETS])  # bert_large: the same code as bert_base, 20 s more
def test_parity_with_transformers_every_preset(preset):
    transformers = pytest.importorskip("transformers")
    h, layers, heads, inter = PRESETS[preset]
    cfg = BertConfig(vocab_size=1000, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter)
    torch.manual_seed(0)
    ours = BertForPreTraining(cfg).eval()
    hf_cfg = transformers.BertConfig(**{k: v for k, v in cfg.to_dict().items() if k != "unpad"})
    hf = transformers.BertForPreTraining(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and set(missing) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    hf.tie_weights()
    ids, types, mask = batch(vocab=1000, s=32)
    with torch.no_grad():
        o = ours(ids, types, mask)
        r = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
        hidden = ours.bert(ids, types, mask)["sequence_output"]
    real = mask.bool()
    torch.testing.assert_close(hidden[real], r.hidden_states[-1][real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o["mlm_logits"][real], r.prediction_logits[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o["nsp_logits"], r.seq_relationship_logits, atol=1e-5, rtol=1e-5)
    pooled_ref = hf.bert.pooler(r.hidden_states[-1])
    torch.testing.assert_close(o["pooled_output"], pooled_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("unpad,attention", [(True, "sdpa"), (True, "varlen"), (False, "sdpa")])
@pytest.mark.parametrize("hidden_p,attention_p", [(0.1, 0.0), (0.0, 0.1)])
def test_dropout_noise_matches_transformers(unpad, attention, hidden_p, attention_p):
    """Same weights and batch in train mode: over many draws, each output element varies as much as transformers'
    does, for hidden and attention dropout separately. A dropout skipped or misplaced (say, on the unpadded path)
    changes that variance; noise alone moves the ratio by a few percent."""
    transformers = pytest.importorskip("transformers")
    cfg = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=512, hidden_dropout_prob=hidden_p, attention_probs_dropout_prob=attention_p,
                     unpad=unpad, attention=attention)
    torch.manual_seed(0)
    ours = BertForSequenceClassification(cfg, num_labels=2).train()
    hf = transformers.BertForSequenceClassification(transformers.BertConfig(
        **{k: v for k, v in cfg.to_dict().items() if k not in ("unpad", "attention")}, num_labels=2)).train()
    hf.load_state_dict(ours.state_dict())
    ids, types, mask = batch(vocab=1000, b=8, s=32)
    real = mask.bool()
    with torch.no_grad():
        draws = {name: torch.stack([out(m)[real] for _ in range(60)]) for name, m, out in (
            ("ours", ours, lambda m: m.bert(ids, types, mask)["sequence_output"]),
            ("hf", hf, lambda m: m.bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state))}
    var_ours, var_hf = draws["ours"].var(0).mean(), draws["hf"].var(0).mean()
    assert var_hf > 1e-6  # the check has something to compare
    assert var_ours / var_hf == pytest.approx(1.0, abs=0.05)
    # and the mean output agrees: |difference| / its standard error averages sqrt(2/pi) = 0.80 when unbiased
    z = (draws["ours"].mean(0) - draws["hf"].mean(0)) / ((draws["ours"].var(0) + draws["hf"].var(0)) / 60).sqrt()
    assert float(z.abs().mean()) == pytest.approx(0.80, abs=0.08)


def test_varlen_attention_over_packed_rows_equals_unpacked():
    """Packed rows (sequence_ids) on the varlen path: each sequence attends only within itself, as when unpacked."""
    torch.manual_seed(0)
    m = BertForPreTraining(small_config(unpad=True, attention="varlen")).eval()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randint(5, 500, (9,), generator=g), torch.randint(5, 500, (13,), generator=g)
    row = torch.zeros(1, 24, dtype=torch.long)
    row[0, :9], row[0, 9:22] = a, b
    seq = torch.zeros(1, 24, dtype=torch.long)
    seq[0, :9], seq[0, 9:22] = 1, 2
    pos = torch.cat([torch.arange(9), torch.arange(13), torch.zeros(2, dtype=torch.long)])[None]
    with torch.no_grad():
        packed = m.bert(row, sequence_ids=seq, position_ids=pos)["sequence_output"][0]
        alone = [m.bert(x[None], attention_mask=torch.ones(1, len(x), dtype=torch.long))["sequence_output"][0]
                 for x in (a, b)]
    torch.testing.assert_close(packed[:9], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[9:22], alone[1], atol=1e-5, rtol=1e-5)


def test_attention_setting_is_checked():
    with pytest.raises(ValueError, match="attention='flash' is not one of auto, sdpa, varlen"):
        small_config(attention="flash")


def test_pre_layer_norm_is_layernorm_before_each_sublayer():
    """layer_norm_position="pre": x + attn(LN(x)), then h + ffn(LN(h)), and one LayerNorm after the last layer,
    checked against the same computation written out with torch's functional ops on the module's weights."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    cfg = small_config(num_hidden_layers=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       layer_norm_position="pre")
    m = BertForPreTraining(cfg).eval()
    for p in m.parameters():  # LayerNorms away from identity, so a misplaced one shows
        p.data.add_(0.1 * torch.randn_like(p))
    ids = torch.randint(5, 500, (2, 16))
    with torch.no_grad():
        out = m.bert(ids)["sequence_output"]
        e = m.bert.embeddings(ids, torch.zeros_like(ids))
        layer = m.bert.encoder.layer[0]
        ln = lambda mod, x: F.layer_norm(x, (64,), mod.weight, mod.bias, cfg.layer_norm_eps)  # noqa: E731
        a = ln(layer.attention.output.LayerNorm, e)
        qkv = [F.linear(a, lin.weight, lin.bias).view(2, 16, 4, 16).transpose(1, 2)
               for lin in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value)]
        ctx = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / 4.0, -1) @ qkv[2]
        h = e + layer.attention.output.dense(ctx.transpose(1, 2).reshape(2, 16, 64))
        f = F.gelu(layer.intermediate.dense(ln(layer.output.LayerNorm, h)))
        ref = ln(m.bert.encoder.LayerNorm, h + layer.output.dense(f))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_pre_layer_norm_trains_and_is_checked():
    torch.manual_seed(0)
    m = BertForPreTraining(small_config(layer_norm_position="pre", unpad=True))
    assert "bert.encoder.LayerNorm.weight" in m.state_dict()
    assert "bert.encoder.LayerNorm.weight" not in BertForPreTraining(small_config()).state_dict()
    ids, types, mask = batch()
    real = mask.bool()
    loss = m(ids, types, mask, mlm_labels=torch.where(real, ids, -100), next_sentence_label=torch.ones(3).long())
    loss["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="layer_norm_position='middle' is not one of post, pre"):
        small_config(layer_norm_position="middle")


def test_pre_layer_norm_checkpoint_round_trip_and_no_hugging_face_export(tmp_path):
    from bert_pl.io.checkpoints import Checkpoint, CheckpointError, resolve, save_huggingface, save_ours

    cfg = small_config(layer_norm_position="pre")
    m = BertForPreTraining(cfg)
    path = save_ours(Checkpoint(cfg, m.state_dict(), None, "mem", "bert-pl", {"head": "pretraining"}), tmp_path / "p.ckpt")
    back = resolve(path)
    assert back.config.layer_norm_position == "pre"
    restored = BertForPreTraining(back.config)
    restored.load_state_dict(back.state_dict, strict=False)
    ids, types, mask = batch()
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(ids, types, mask)["mlm_logits"], m.eval()(ids, types, mask)["mlm_logits"])
    with pytest.raises(CheckpointError, match="pre-LayerNorm model has no Hugging Face BERT equivalent.*--format onnx"):
        save_huggingface(back, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
