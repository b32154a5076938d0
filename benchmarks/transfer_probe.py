"""Why does the transfer benchmark's pretrained BERT-Mini fine-tune worse than random init on SST-2? A linear probe.

    python benchmarks/transfer_probe.py            # after benchmarks/transfer.py (its pretrained and random-init checkpoints)

Freezes each encoder (bert-pl pretrained, and the same network from random init, as `transfer.py` left them under
--work) and fits a logistic regression on SST-2 training sentences to two sentence features: the final hidden state
of [CLS] (what the fine-tuning head reads, through the pooler) and the mean of the final hidden states over real
tokens. Dev accuracy of each probe says whether the pretraining put sentiment-relevant information in the tokens
and whether [CLS] carries it. Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bert_pl.extract_features import load_encoder  # noqa: E402


def fail(msg: str):
    raise SystemExit(f"error: {msg}")


def read_sst2(path: Path, limit: int):
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    pairs = [r.rsplit("\t", 1) for r in rows if r.strip()]
    return [p[0] for p in pairs[:limit]], [int(p[1]) for p in pairs[:limit]]


@torch.no_grad()
def features(model, tokenizer, sentences, max_len=64, batch_size=64):
    tokenizer.enable_truncation(max_len)
    tokenizer.no_padding()
    cls, mean = [], []
    for start in range(0, len(sentences), batch_size):
        encs = tokenizer.encode_batch(sentences[start:start + batch_size])
        width = max(len(e.ids) for e in encs)
        ids = torch.zeros(len(encs), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = torch.tensor(e.ids)
            mask[i, :len(e.ids)] = 1
        h = model(ids, torch.zeros_like(ids), mask)["sequence_output"]
        cls.append(h[:, 0])
        mean.append((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    return torch.cat(cls).numpy(), torch.cat(mean).numpy()


def probe(train_x, train_y, dev_x, dev_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    clf.fit(train_x, train_y)
    return float(clf.score(dev_x, dev_y))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench" / "transfer"), help="transfer.py's --work")
    p.add_argument("--glue", default=str(ROOT.parent / "shared" / "data" / "glue"))
    p.add_argument("--train", type=int, default=5000, help="SST-2 training sentences for the probe")
    args = p.parse_args(argv)
    work, sst2 = Path(args.work), Path(args.glue) / "SST-2"
    ckpts = {"random": work / "random_init.ckpt", "pretrained": work / "pretrain" / "checkpoints" / "last.ckpt"}
    for name, path in ckpts.items():
        if not path.is_file():
            fail(f"{path} not found: run benchmarks/transfer.py first (or pass its --work)")
    if not (sst2 / "train.tsv").is_file():
        fail(f"{sst2 / 'train.tsv'} not found (the shared data lives at ../shared/data); pass --glue")
    train_s, train_y = read_sst2(sst2 / "train.tsv", args.train)
    dev_s, dev_y = read_sst2(sst2 / "dev.tsv", 10 ** 9)
    results = {}
    for name, path in ckpts.items():
        model, tok = load_encoder(str(path))
        tr_cls, tr_mean = features(model, tok, train_s)
        dv_cls, dv_mean = features(model, tok, dev_s)
        results[name] = {"cls": round(probe(tr_cls, train_y, dv_cls, dev_y), 4),
                         "mean": round(probe(tr_mean, train_y, dv_mean, dev_y), 4)}
    print(f"SST-2 dev accuracy of a logistic-regression probe on frozen features ({args.train} training sentences)")
    print("| encoder | [CLS] final hidden state | mean of final hidden states |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['cls']} | {r['mean']} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
