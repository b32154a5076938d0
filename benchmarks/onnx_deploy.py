"""ONNX deployment on MRPC dev: fused nodes, label agreement with PyTorch, dev accuracy, and speed (not a test).

    flock /tmp/heavy.lock python benchmarks/onnx_deploy.py --run /work/runs/mrpc_minilm

From a fine-tuned MRPC run it writes, with `python -m bert_pl.export RUN DIR --format onnx` and the same flags a
user gives: the plain export, `--optimize`, and `--optimize --quantize` (dynamic int8). Then:
- fused nodes: what onnxruntime's transformer optimizer (model_type bert, the export's settings) makes of our plain
  graph, and of a transformers ONNX export of the same weights (BertForSequenceClassification through
  torch.onnx.export, opset 17) when transformers is installed;
- labels on the 408 dev pairs: each ONNX folder through `bert_pl.load(folder).predict` against
  `bert_pl.load(RUN).predict` (PyTorch fp32), and each one's dev accuracy against the gold labels;
- speed at batch 1 and 32, all with the same threads (torch.set_num_threads and onnxruntime's intra-op threads):
  `predict` end to end (tokenising included) and the model alone (`Model.run` on the tokenised pairs: batching,
  padding, the forward pass). Each runs `--repeats` times after a warm-up, alternating; the best time counts.
The JSON (date, machine, versions, command) goes to --out (default benchmarks/results/onnx/<run folder name>.json).
"""
import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bert_pl.training.hardware import cpu_model  # noqa: E402

VARIANTS = {"onnx_fp32": [], "onnx_fp32_optimized": ["--optimize"], "onnx_int8_optimized": ["--optimize", "--quantize"]}


def read_mrpc(path: Path):
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8-sig").splitlines()[1:] if line.strip()]
    return [(r[3], r[4]) for r in rows], [int(r[0]) for r in rows]


def transformers_fusion(run: str, work: Path, num_heads: int, hidden_size: int):
    """Fused nodes of transformers ONNX exports of the same weights (their BertForSequenceClassification with its
    default attention, SDPA, and with eager attention), through the same optimizer settings as ours."""
    try:
        import transformers
    except ImportError:
        return None
    from bert_pl.cli.export import export_huggingface
    from bert_pl.io import checkpoints, onnx

    hf_dir = work / "hf"
    export_huggingface(checkpoints.resolve(run), hf_dir, run)
    example = (torch.randint(1000, 2000, (2, 16)), torch.ones(2, 16, dtype=torch.long),
               torch.zeros(2, 16, dtype=torch.long))
    axes = {0: "batch", 1: "sequence"}
    names = ["input_ids", "attention_mask", "token_type_ids"]  # the order of their forward's arguments
    out = {"transformers": transformers.__version__}
    for attention in ("sdpa", "eager"):
        model = transformers.BertForSequenceClassification.from_pretrained(str(hf_dir),
                                                                           attn_implementation=attention).eval()
        model.config.return_dict = False
        path = work / f"hf_{attention}.onnx"
        with torch.no_grad():
            torch.onnx.export(model, example, str(path), input_names=names, output_names=["logits"],
                              dynamic_axes={**{n: axes for n in names}, "logits": {0: "batch"}}, opset_version=17,
                              dynamo=False)
        out[attention] = onnx.optimize(path, work / f"hf_{attention}.opt.onnx", num_heads, hidden_size)
    return out


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (sessions, allocators, kernels chosen)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="/work/runs/mrpc_minilm", help="a fine-tuned MRPC run (folder or .ckpt)")
    p.add_argument("--glue", default=str(ROOT.parent / "shared/data/glue"))
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--keep", default=None, help="write the ONNX folders here (default: a temporary folder)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)  # the ONNX runtime (OnnxNet) takes the same number

    import onnxruntime

    import bert_pl
    from bert_pl.cli.export import main as export_main
    from bert_pl.io import onnx

    dev = Path(args.glue) / "MRPC" / "dev.tsv"
    if not dev.is_file():
        raise SystemExit(f"error: {dev} not found; pass --glue PATH")
    pairs, gold = read_mrpc(dev)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="onnx_deploy_"))
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "machine": {"cpu": cpu_model(), "cores": __import__("os").cpu_count(), "platform": platform.platform()},
              "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                           "python": platform.python_version()},
              "run": args.run, "threads": torch.get_num_threads(), "examples": len(pairs)}

    models = {"pytorch_fp32": bert_pl.load(args.run)}
    config = models["pytorch_fp32"].config
    for name, flags in VARIANTS.items():
        export_main([args.run, str(work / name), "--format", "onnx", *flags])
        models[name] = bert_pl.load(work / name)
    result["model"] = {"layers": config.num_hidden_layers, "hidden": config.hidden_size,
                       "heads": config.num_attention_heads, "max_seq_length": models["pytorch_fp32"].max_seq_length}
    result["size_mb"] = {n: round((work / n / "model.onnx").stat().st_size / 2 ** 20, 1) for n in VARIANTS}

    # fused nodes: ours (the optimizer on our plain export, as --optimize runs it) vs transformers' export
    ours = onnx.optimize(work / "onnx_fp32" / "model.onnx", work / "ours.opt.onnx", config.num_attention_heads,
                         config.hidden_size)
    result["fused"] = {"bert_pl": ours, "transformers": transformers_fusion(args.run, work, config.num_attention_heads,
                                                                              config.hidden_size)}

    # labels and dev accuracy
    predicted = {}
    for name, model in models.items():
        index = {label: i for i, label in enumerate(model.labels)}
        predicted[name] = np.array([index[r["label"]] for r in model.predict(pairs, progress=False)])
    ref = predicted["pytorch_fp32"]
    gold = np.array(gold)
    result["labels"] = {name: {"agreement_with_pytorch": round(float((lab == ref).mean()), 4),
                               "differ": int((lab != ref).sum()),
                               "dev_accuracy": round(float((lab == gold).mean()), 4),
                               "dev_accuracy_delta": round(float((lab == gold).mean() - (ref == gold).mean()), 4)}
                        for name, lab in predicted.items()}

    # speed: end to end and the model alone, each batch size, alternating between runtimes
    speed = {}
    for bs in args.batch_sizes:
        for model in models.values():
            model.batch_size = bs
        feats = {name: [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in m.encode(pairs)]
                 for name, m in models.items()}
        row = {}
        for name, model in models.items():
            e2e = best_time(lambda: model.predict(pairs, progress=False), args.repeats)
            fwd = best_time(lambda: model.run(feats[name], progress=False), args.repeats)
            row[name] = {"predict_s": round(e2e, 3), "predict_per_s": round(len(pairs) / e2e, 1),
                         "model_s": round(fwd, 3), "model_per_s": round(len(pairs) / fwd, 1)}
        base = row["pytorch_fp32"]
        for r in row.values():
            r["predict_speedup"] = round(base["predict_s"] / r["predict_s"], 2)
            r["model_speedup"] = round(base["model_s"] / r["model_s"], 2)
        speed[f"batch_{bs}"] = row
        print(f"batch {bs}: " + ", ".join(f"{n} {r['predict_per_s']}/s ({r['predict_speedup']}x)"
                                          for n, r in row.items()), flush=True)
    result["speed"] = speed

    out = Path(args.out) if args.out else ROOT / "benchmarks/results/onnx" / f"{Path(args.run).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("fused", "labels", "size_mb")}, indent=1))
    print(f"-> {out}")
    return result


if __name__ == "__main__":
    main()
