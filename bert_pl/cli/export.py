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

from bert_pl.errors import UserError
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
    reloads with `bert_pl.load` (predictions run under onnxruntime). The graph's outputs and dynamic axes are the
    head family's (its Predictor's onnx_* hooks)."""
    from bert_pl.inference.model import Model
    from bert_pl.io import onnx, tokenization

    model = Model(ckpt)
    net, family = model.model, type(model.predictor)
    net.config.unpad = False  # data-dependent indexing does not export; the padded path gives the same numbers
    names = family.onnx_outputs(net)
    out = Path(out_dir)
    onnx.export(net, names, family.onnx_input_axes, {n: family.onnx_output_axes(n) for n in names},
                out / "model.onnx", opset)
    tokenization.save(model.tokenizer, out)
    meta = {**{k: v for k, v in ckpt.info.items() if k not in ("architectures",)}, "head": ckpt.head,
            "outputs": names, "labels": model.labels, "problem_type": model.problem_type, "task": model.task_info,
            "config": ckpt.config.to_dict(), "source": ckpt.source}
    (out / onnx.METADATA).write_text(json.dumps(meta, indent=2))
    return out / "model.onnx"


def export_huggingface(ckpt, out_dir, src: str) -> Path:
    """A Hugging Face folder (config, weights, tokenizer), the files the head's family adds (e.g. a
    sentence-transformers layout), and a model card README.md."""
    from bert_pl.model.heads import get_head

    out = checkpoints.save_huggingface(ckpt, out_dir)
    get_head(ckpt.head).predictor_class().write_export_extras(ckpt.info, Path(out))
    (Path(out) / "README.md").write_text(model_card(ckpt, run_results(src)))
    return out


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
            out = export_huggingface(ckpt, args.dst, args.src)
    except (UserError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"{ckpt.kind} checkpoint ({ckpt.head}, {ckpt.config.num_hidden_layers} layers, hidden "
          f"{ckpt.config.hidden_size}) -> {out}")


if __name__ == "__main__":
    main()
