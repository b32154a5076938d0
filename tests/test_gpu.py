"""CUDA checks (`pytest -m gpu`, run by benchmarks/gpu_check.sh on a GPU machine; skipped without a CUDA GPU):
parity with transformers in fp32 and bf16, varlen vs SDPA attention, a few real training steps of both modules
through Lightning in bf16, and a checkpoint written and resumed on the GPU."""
import csv
import sys

import pytest
import torch

from conftest import ROOT, run_cli

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (pytest -m gpu on a GPU box)")]

SIZE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def batch(b=8, s=128, seed=0, device="cuda"):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(20, s + 1, (b,), generator=g)
    lengths[0] = s
    mask = (torch.arange(s)[None] < lengths[:, None]).long()
    ids = torch.randint(1000, 30000, (b, s), generator=g) * mask
    types = (torch.arange(s)[None] >= (lengths // 2)[:, None]).long() * mask
    return ids.to(device), types.to(device), mask.to(device)


def rel_err(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("attention", ["sdpa", "varlen"])
def test_bert_base_matches_transformers_on_cuda(dtype, attention):
    """Same weights and padded batch: outputs at real tokens equal transformers' (SDPA); in bf16 both are compared
    with the fp32 result and must be as close to it as transformers is (relative error <= 1e-2)."""
    transformers = pytest.importorskip("transformers")
    from bert_pl.model.bert import BertConfig, BertForPreTraining

    cfg = BertConfig(**SIZE, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, unpad=True,
                     attention=attention)
    torch.manual_seed(0)
    ours = BertForPreTraining(cfg).cuda().eval()
    hf = transformers.BertForPreTraining(transformers.BertConfig(
        **{k: v for k, v in cfg.to_dict().items() if k not in cfg.FAST_PATH_KEYS}, attn_implementation="sdpa"))
    hf.load_state_dict(ours.state_dict(), strict=False)
    hf.tie_weights()
    hf = hf.cuda().eval()
    ids, types, mask = batch()
    real = mask.bool()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
        ref_out = ref.hidden_states[-1][real]
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            got = ours.bert(ids, types, mask)["sequence_output"][real]
            hf_low = hf(input_ids=ids, token_type_ids=types, attention_mask=mask,
                        output_hidden_states=True).hidden_states[-1][real]
    if dtype == torch.float32:
        # TF32 may be on for matmuls: the tolerance of TF32, not of fp32
        assert rel_err(got, ref_out) <= (1e-5 if not torch.backends.cuda.matmul.allow_tf32 else 2e-3)
    else:
        assert rel_err(got, ref_out) <= max(1e-2, 1.5 * rel_err(hf_low, ref_out))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_varlen_equals_sdpa_layer_output(dtype):
    """The unpadded attention product (FlashAttention varlen in bf16, nested jagged SDPA in fp32) against the
    re-padded SDPA path: relative error of the encoder output <= 1e-2 in bf16, <= 1e-5 in fp32."""
    from bert_pl.model.bert import BertConfig, BertModel

    torch.backends.cuda.matmul.allow_tf32 = False
    cfg = BertConfig(**SIZE, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, unpad=True, attention="sdpa")
    torch.manual_seed(0)
    model = BertModel(cfg).cuda().eval().to(dtype)
    ids, types, mask = batch()
    real = mask.bool()
    with torch.no_grad():
        ref = model(ids, types, mask)["sequence_output"][real]
        model.config.attention = "varlen"
        got = model(ids, types, mask)["sequence_output"][real]
    assert rel_err(got, ref) <= (1e-2 if dtype == torch.bfloat16 else 1e-5)


def test_varlen_dropout_matches_sdpa_in_distribution():
    """Attention dropout on the varlen path (nested jagged SDPA): over many draws the output's mean and spread per
    element equal the SDPA path's."""
    from bert_pl.model.bert import BertConfig, BertModel

    cfg = BertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=1024, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.1, unpad=True)
    torch.manual_seed(0)
    model = BertModel(cfg).cuda().train()
    ids, types, mask = batch(b=4, s=64)
    real = mask.bool()
    draws = {}
    with torch.no_grad():
        for attention in ("sdpa", "varlen"):
            model.config.attention = attention
            draws[attention] = torch.stack([model(ids, types, mask)["sequence_output"][real] for _ in range(60)])
    var = {k: v.var(0).mean() for k, v in draws.items()}
    assert var["sdpa"] > 1e-6 and float(var["varlen"] / var["sdpa"]) == pytest.approx(1.0, abs=0.08)
    z = (draws["varlen"].mean(0) - draws["sdpa"].mean(0)) / ((draws["varlen"].var(0) + draws["sdpa"].var(0)) / 60).sqrt()
    assert float(z.abs().mean()) == pytest.approx(0.80, abs=0.1)


def _losses(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}


def test_pretraining_steps_in_bf16_then_resume_on_gpu(tmp_path):
    """train.py accelerator=gpu (bf16-mixed, varlen attention, packing) trains, writes a checkpoint, and a second
    run resumes from it to the end: finite losses, the step count continues."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(f"Sentence {d} {i} about topic {d % 7} and word {i * d % 13}."
                                            for i in range(12)) for d in range(200)))
    common = ["data=text", f"data.source.paths=[{corpus}]", "data.source.doc_split=block", "data.streaming=true", "data.packing=true",
              "data.batch_size=16", "data.tokenizer.vocab_size=2000", "model=bert_mini", "accelerator=gpu",
              "trainer.log_every_n_steps=1", "callbacks.last_checkpoint.every_n_train_steps=5",
              "trainer.val_check_interval=1000", f"paths.cache_dir={tmp_path / 'cache'}", "logger=csv"]
    run = tmp_path / "run"
    res = run_cli(["train.py", *common, "trainer.max_steps=10", f"hydra.run.dir={run}"])
    assert res.returncode == 0, res.stderr[-3000:]
    first = _losses(run)
    assert len(first) == 10 and all(torch.isfinite(torch.tensor(v)) for v in first.values())
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 10
    res = run_cli(["train.py", *common, "trainer.max_steps=15", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(_losses(run)) == list(range(15))  # continued in the same folder at step 10


def tiny_checkpoint(path, texts):
    """A random-init BERT-Tiny with a vocab trained on `texts`, in bert-pl's format (no downloads, no MiniLM)."""
    from bert_pl.io import tokenization
    from bert_pl.io.checkpoints import Checkpoint, save_ours
    from bert_pl.model.bert import BertConfig, BertForPreTraining

    tok = tokenization.train(texts, vocab_size=200, min_frequency=1)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=512)
    return save_ours(Checkpoint(cfg, BertForPreTraining(cfg).state_dict(), tok.to_str(), "test", "bert-pl"), path)


def test_finetuning_steps_in_bf16_on_gpu(tmp_path):
    """finetune.py accelerator=gpu on a small CSV: trains in bf16-mixed, evaluates, writes predictions."""
    train = tmp_path / "train.csv"
    rows = [("good fine great", "pos"), ("bad awful poor", "neg")] * 40
    with open(train, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    tiny_pretrained = tiny_checkpoint(tmp_path / "tiny.ckpt", [text for text, _ in rows])
    res = run_cli(["finetune.py", "task=text_classification", f"pretrained={tiny_pretrained}",
                   f"data.train_file={train}", f"data.validation_file={train}", "accelerator=gpu",
                   "trainer.max_epochs=2", "optimizer.lr=1e-3", f"hydra.run.dir={tmp_path / 'run'}"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "run" / "predictions_dev.jsonl").is_file() and (tmp_path / "run" / "results.json").is_file()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-m", "gpu", "-q", str(ROOT)]))
