"""SQuAD v1.1, a short fine-tune on part of the shared dev set: the real MiniLM weights vs a random-init tiny BERT.
Training questions come from articles 5.. and evaluation questions from articles 0..1, so no question is in both.

    python benchmarks/squad_minilm_vs_random.py --out squad_compare.json
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from minilm_weights import minilm_dir  # noqa: E402  (benchmarks/, the script's own folder)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", default=str(ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"))
    ap.add_argument("--train-questions", type=int, default=4000)
    ap.add_argument("--lr", default="1e-4")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-seq-length", type=int, default=192)
    ap.add_argument("--only", choices=["minilm", "random_tiny"], default=None, help="run one of the two")
    ap.add_argument("--out", default="squad_compare.json")
    args = ap.parse_args()
    import torch

    from bert_pl.io import tokenization
    from bert_pl.io.checkpoints import Checkpoint, save_ours
    from bert_pl.model.bert import BertConfig, BertForPreTraining

    data = json.loads(Path(args.dev).read_text())
    work = Path(tempfile.mkdtemp())
    (work / "train-v1.1.json").write_text(json.dumps({"version": "1.1", "data": data["data"][5:]}))
    (work / "dev-v1.1.json").write_text(json.dumps({"version": "1.1", "data": data["data"][:2]}))
    minilm = minilm_dir()
    tok = tokenization.from_vocab_file(minilm / "vocab.txt")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=512)
    random_ckpt = work / "random_tiny.ckpt"
    save_ours(Checkpoint(cfg, BertForPreTraining(cfg).state_dict(), tok.to_str(), "random", "bert-pl"), random_ckpt)
    results = {}
    runs = [("minilm", minilm, args.lr), ("random_tiny", random_ckpt, args.lr)]
    for name, pretrained, lr in [r for r in runs if args.only in (None, r[0])]:
        out = ROOT / "outputs" / "bench" / f"squad_{name}"
        t0 = time.time()
        cmd = [sys.executable, "finetune.py", "task=squad_v1", f"pretrained={pretrained}", f"data_dir={work}",
               f"data.limit_train_examples={args.train_questions}", f"data.max_seq_length={args.max_seq_length}",
               f"data.doc_stride={args.max_seq_length // 2}", "data.batch_size=32", f"trainer.max_epochs={args.epochs}",
               f"optimizer.lr={lr}", f"hydra.run.dir={out}"]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        r = json.loads((out / "results.json").read_text())
        results[name] = {"dev": r["dev"]["dev"], "lr": lr, "wall_s": round(time.time() - t0, 1)}
        print(name, results[name], flush=True)
    n_eval = sum(len(p["qas"]) for a in data["data"][:2] for p in a["paragraphs"])
    record = {"train_questions": args.train_questions, "eval_questions": n_eval, "epochs": args.epochs,
              "max_seq_length": args.max_seq_length, "results": results}
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
