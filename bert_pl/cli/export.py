"""Export any checkpoint (a run folder, .ckpt, latest[:TASK], Hugging Face or Google folder) for use elsewhere.

    python -m bert_pl.export outputs/finetune/mrpc/runs/latest exported/ --format hf     # + model card README.md
    python -m bert_pl.export outputs/finetune/mrpc/runs/latest exported/ --format onnx   # model.onnx + tokenizer
    python -m bert_pl.export SRC DST.ckpt                                                 # a bert-pl checkpoint

Hugging Face folders load in `transformers` (and `bert_pl.load`) with no missing or unexpected keys, tokenizer
files included; a fine-tuned run's folder gets a model card (base checkpoint, task, labels, hyperparameters, dev
metrics, the command that made it). ONNX: the encoder with its head, inputs `input_ids`, `token_type_ids`,
`attention_mask` with dynamic batch and sequence axes (and choices, for multiple choice), outputs as the head's.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

from bert_pl.io import checkpoints

FORMATS = ("hf", "onnx", "ours")


def run_results(src: str) -> Optional[dict]:
    """results.json of the fine-tuning run a checkpoint came from (a run folder, or <run>/checkpoints/x.ckpt)."""
    from bert_pl.io import runs

    path = Path(runs.expand(src))
    for folder in (path, path.parent, path.parent.parent):
        if (folder / "results.json").is_file():
            return json.loads((folder / "results.json").read_text())
    return None


def model_card(ckpt, results: Optional[dict]) -> str:
    lines = [f"# BERT ({ckpt.head})", "", f"Exported by bert-pl from `{ckpt.source}`.", "",
             f"- Architecture: {ckpt.config.num_hidden_layers} layers, hidden {ckpt.config.hidden_size}, "
             f"{ckpt.config.num_attention_heads} heads, vocabulary {ckpt.config.vocab_size}"]
    if ckpt.info.get("labels"):
        lines.append(f"- Labels (in output order): {', '.join(map(str, ckpt.info['labels']))}")
    if results:
        lines += [f"- Task: {results.get('task')}", f"- Fine-tuned from: `{results.get('pretrained')}`",
                  f"- Hyperparameters: lr {results.get('lr')}, batch size {results.get('batch_size')}, "
                  f"epochs {results.get('max_epochs')}, seed {results.get('seed')}",
                  f"- Best dev {(results.get('best') or {}).get('metric')}: {(results.get('best') or {}).get('value')} "
                  f"(epoch {(results.get('best') or {}).get('epoch')})", "", "## Dev metrics", "",
                  "```", json.dumps(results.get("dev"), indent=2), "```", "", "## The command that made it", "",
                  "```", "python finetune.py " + " ".join(results.get("overrides") or []), "```"]
    return "\n".join(lines) + "\n"


def export_onnx(ckpt, out_dir, opset: int = 17) -> Path:
    """model.onnx (+ the tokenizer and bert_pl.json with head, labels and task settings) in `out_dir`; the folder
    reloads with `bert_pl.load` (predictions run under onnxruntime)."""
    import torch

    from bert_pl.inference.model import Model
    from bert_pl.io import tokenization

    model = Model(ckpt)
    net = model.model
    net.config.unpad = False  # data-dependent indexing does not export; the padded path gives the same numbers
    outputs = {"pretraining": ["mlm_logits", "nsp_logits"], "classification": ["logits"], "span":
               ["start_logits", "end_logits"], "token_classification": ["logits"], "multiple_choice": ["logits"]}
    names = [n for n in outputs[ckpt.head] if n != "nsp_logits" or getattr(net.cls, "seq_relationship", None)]

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, input_ids, token_type_ids, attention_mask):
            out = self.net(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
            return tuple(out[n] for n in names)

    shape = (2, 3, 16) if ckpt.head == "multiple_choice" else (2, 16)
    example = (torch.randint(1000, 2000, shape), torch.zeros(shape, dtype=torch.long),
               torch.ones(shape, dtype=torch.long))
    axes = {0: "batch", 1: "choices", 2: "sequence"} if ckpt.head == "multiple_choice" else {0: "batch", 1: "sequence"}
    dynamic = {n: axes for n in ("input_ids", "token_type_ids", "attention_mask")}
    for n in names:
        dynamic[n] = {0: "batch", 1: "choices"} if ckpt.head == "multiple_choice" else \
            ({0: "batch"} if n == "nsp_logits" or ckpt.head == "classification" else {0: "batch", 1: "sequence"})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Exported().eval(), example, str(out / "model.onnx"), input_names=list(dynamic)[:3],
                      output_names=names, dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    tokenization.save(model.tokenizer, out)
    (out / "bert_pl.json").write_text(json.dumps({"head": ckpt.head, "outputs": names, "labels": model.labels,
                                                  "problem_type": model.problem_type, "task": model.task_info,
                                                  "config": ckpt.config.to_dict(), "source": ckpt.source}, indent=2))
    return out / "model.onnx"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bert_pl.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--format", choices=FORMATS, default=None,
                    help="hf (default), onnx, or ours (default when DST ends in .ckpt)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fmt = args.format or ("ours" if args.dst.endswith(".ckpt") else "hf")
    try:
        ckpt = checkpoints.resolve(args.src)
        if fmt == "ours":
            out = checkpoints.save_ours(ckpt, args.dst)
        elif fmt == "onnx":
            out = export_onnx(ckpt, args.dst)
        else:
            out = checkpoints.save_huggingface(ckpt, args.dst)
            (Path(out) / "README.md").write_text(model_card(ckpt, run_results(args.src)))
    except (checkpoints.CheckpointError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"{ckpt.kind} checkpoint ({ckpt.head}, {ckpt.config.num_hidden_layers} layers, hidden "
          f"{ckpt.config.hidden_size}) -> {out}")


if __name__ == "__main__":
    main()
