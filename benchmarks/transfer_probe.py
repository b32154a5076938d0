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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bert_pl  # noqa: E402
from bert_pl.tasks.glue import get_task, read_tsv  # noqa: E402


def fail(msg: str):
    raise SystemExit(f"error: {msg}")


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
    task = get_task("sst2")
    train = read_tsv(sst2 / "train.tsv", task, "train")[:args.train]
    dev = read_tsv(sst2 / "dev.tsv", task, "dev")
    train_texts, train_labels = [e.texts[0] for e in train], [e.label for e in train]
    dev_texts, dev_labels = [e.texts[0] for e in dev], [e.label for e in dev]
    results = {}
    for name, path in ckpts.items():
        model = bert_pl.load(path, max_seq_length=64)  # the transfer benchmark's SST-2 length
        results[name] = {pooling: round(probe(model.embed(train_texts, pooling=pooling), train_labels,
                                              model.embed(dev_texts, pooling=pooling), dev_labels), 4)
                         for pooling in ("cls", "mean")}
    print(f"SST-2 dev accuracy of a logistic-regression probe on frozen features ({args.train} training sentences)")
    print("| encoder | [CLS] final hidden state | mean of final hidden states |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['cls']} | {r['mean']} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
