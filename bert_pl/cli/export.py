"""Export any checkpoint (a run folder, .ckpt, latest[:TASK], Hugging Face or Google folder) for use elsewhere.

    python -m bert_pl.export outputs/finetune/mrpc/runs/latest exported/ --format hf     # + model card README.md
    python -m bert_pl.export outputs/finetune/mrpc/runs/latest exported/ --format onnx   # model.onnx + tokenizer
    python -m bert_pl.export SRC DST.ckpt                                                 # a bert-pl checkpoint
    python -m bert_pl.export RUN exported/ --push-to-hub your-name/bert-mrpc               # and upload it
    python -m bert_pl.export RUN exported/ --format onnx --optimize                        # fused for onnxruntime
    python -m bert_pl.export RUN exported/ --format onnx --optimize --quantize             # + int8 weights (CPU)

Hugging Face folders load in `transformers` (and `bert_pl.load`) with no missing or unexpected keys, tokenizer
files included, and carry a model card the Hub reads (README.md: YAML metadata with the base model, dataset,
license, pipeline tag and the dev results as model-index; then labels, hyperparameters, dev metrics, the command
that made the run, and a warning when results.json flags the run as untrained).

ONNX: the encoder with its head, inputs `input_ids`, `token_type_ids`, `attention_mask` with dynamic batch and
sequence axes (and choices, for multiple choice), outputs as the head's; the folder holds model.onnx, the tokenizer,
config.json (Hugging Face-style), bert_pl.json and the model card, and reloads with `bert_pl.load(folder)`
(onnxruntime, CPU). --optimize fuses the graph with onnxruntime's transformer optimizer (Attention,
SkipLayerNormalization, BiasGelu, EmbedLayerNormalization; the counts are printed and kept in bert_pl.json);
--quantize stores int8 weights (dynamic quantization), of the optimized graph with --optimize. docs/onnx.md has
the fused-node counts, agreement and speed on MRPC.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bert_pl.errors import UserError
from bert_pl.io import checkpoints
from bert_pl.io.model_card import model_card, run_results
from bert_pl.model.heads import get_head

FORMATS = ("hf", "onnx", "ours")


def export_onnx(ckpt, out_dir, opset: int = 17, optimize: bool = False, quantize: bool = False) -> Path:
    """model.onnx (+ the tokenizer, config.json and bert_pl.json with head, labels and task settings) in `out_dir`;
    the folder reloads with `bert_pl.load` (predictions run under onnxruntime). The graph's outputs and dynamic axes
    are the head family's (its Predictor's onnx_* hooks). `optimize`: model.onnx is the graph fused by onnxruntime's
    transformer optimizer (fused-node counts printed and kept in bert_pl.json under "onnx"); `quantize`: its weights
    in int8 (dynamic quantization)."""
    from bert_pl.inference.model import Model
    from bert_pl.io import onnx, tokenization

    runtime = None
    if optimize or quantize:  # before minutes of work: the missing package in one line
        runtime = onnx.require_onnxruntime("--optimize" if optimize else "--quantize")
    model = Model(ckpt)
    net, family = model.model, type(model.predictor)
    names = family.onnx_outputs(net)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / "model.onnx"
    steps = [out / "model.onnx"] + ([out / "model.optimized.tmp.onnx"] if optimize else []) + \
        ([out / "model.int8.tmp.onnx"] if quantize else [])
    try:  # each step reads the last one's file; the last writes model.onnx
        onnx.export(net, names, family.onnx_input_axes, {n: family.onnx_output_axes(n) for n in names},
                    steps[0], opset)
        fused = None
        if optimize:
            fused = onnx.optimize(steps[0], steps[1], ckpt.config.num_attention_heads, ckpt.config.hidden_size)
        if quantize:
            onnx.quantize(steps[-2], steps[-1])
        if steps[-1] != final:
            steps[-1].replace(final)
    finally:
        for tmp in steps[1:-1]:
            tmp.unlink(missing_ok=True)
    tokenization.save(model.tokenizer, out)
    (out / "config.json").write_text(json.dumps(_onnx_hf_config(ckpt, model), indent=2))
    graph = {"opset": opset, "optimized": optimize, "quantized": "int8-dynamic" if quantize else None,
             "fused": fused, "onnxruntime": runtime.__version__ if runtime else None}
    meta = {**{k: v for k, v in ckpt.info.items() if k not in ("architectures",)}, "head": ckpt.head,
            "outputs": names, "labels": model.labels, "problem_type": model.problem_type, "task": model.task_info,
            "config": ckpt.config.to_dict(), "source": ckpt.source, "onnx": graph}
    (out / onnx.METADATA).write_text(json.dumps(meta, indent=2))
    return final


def _onnx_hf_config(ckpt, model) -> dict:
    """config.json of an ONNX folder: the Hugging Face BERT config of the model (what tools that read a model folder,
    e.g. a tokenizer's or an optimizer's, look for). A pre-LN model says so (Hugging Face BERT is post-LN)."""
    config = checkpoints.hf_config(ckpt.config, ckpt.head, model.labels if model.labels else None,
                                   model.problem_type)
    if ckpt.config.layer_norm_position != "post":
        config["layer_norm_position"] = ckpt.config.layer_norm_position
    return config


def _graph_summary(model_file: Path) -> str:
    """One line on what model.onnx is: optimized or not, int8 or not, its size and fused nodes."""
    from bert_pl.io import onnx

    graph = json.loads((model_file.parent / onnx.METADATA).read_text())["onnx"]
    made = ["optimized" if graph["optimized"] else "not optimized"] + (["int8"] if graph["quantized"] else [])
    line = f"model.onnx: {', '.join(made)}, {model_file.stat().st_size / 2 ** 20:.1f} MB"
    if graph["fused"] is not None:
        line += "; fused nodes: " + (", ".join(f"{op} {n}" for op, n in graph["fused"].items() if n) or "none")
    return line


def export_huggingface(ckpt, out_dir, src: str, license: str = "apache-2.0") -> Path:
    """A Hugging Face folder (config, weights, tokenizer), the files the head's family adds (e.g. a
    sentence-transformers layout), and a model card README.md."""
    out = checkpoints.save_huggingface(ckpt, out_dir)
    family = get_head(ckpt.head).predictor_class()
    family.write_export_extras(ckpt.info, Path(out))
    (Path(out) / "README.md").write_text(model_card(ckpt, run_results(src), family, license))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bert_pl.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--format", choices=FORMATS, default=None,
                    help="hf (default), onnx, or ours (default when DST ends in .ckpt)")
    ap.add_argument("--push-to-hub", metavar="REPO", default=None,
                    help="upload the exported folder to the Hugging Face Hub as model repo REPO (e.g. "
                         "your-name/bert-mrpc; created if absent; needs `hf auth login` or HF_TOKEN)")
    ap.add_argument("--license", default="apache-2.0",
                    help="the license in the model card's metadata (default apache-2.0, Google BERT's; set the "
                         "one your base model and data allow)")
    ap.add_argument("--optimize", action="store_true",
                    help="onnx: fuse the graph with onnxruntime's transformer optimizer (Attention, "
                         "SkipLayerNormalization, BiasGelu, EmbedLayerNormalization); runs under onnxruntime only")
    ap.add_argument("--quantize", action="store_true",
                    help="onnx: int8 weights, activations quantized per call (onnxruntime dynamic quantization; "
                         "of the optimized graph with --optimize): smaller and faster on CPU, scores differ slightly")
    args = ap.parse_args(argv)
    if (args.optimize or args.quantize) and (args.format or ("ours" if args.dst.endswith(".ckpt") else "hf")) != "onnx":
        ap.error(f"{'--optimize' if args.optimize else '--quantize'} applies to ONNX exports: add --format onnx")
    if args.push_to_hub and (args.format or ("ours" if args.dst.endswith(".ckpt") else "hf")) == "ours":
        ap.error("--push-to-hub uploads a folder: use --format hf or onnx")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fmt = args.format or ("ours" if args.dst.endswith(".ckpt") else "hf")
    try:
        ckpt = checkpoints.resolve(args.src)
        if fmt == "ours":
            out = checkpoints.save_ours(ckpt, args.dst)
        elif fmt == "onnx":
            out = export_onnx(ckpt, args.dst, optimize=args.optimize, quantize=args.quantize)
            family = get_head(ckpt.head).predictor_class()
            (Path(out).parent / "README.md").write_text(model_card(ckpt, run_results(args.src), family,
                                                                   args.license))
        else:
            out = export_huggingface(ckpt, args.dst, args.src, args.license)
    except (UserError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"{ckpt.kind} checkpoint ({ckpt.head}, {ckpt.config.num_hidden_layers} layers, hidden "
          f"{ckpt.config.hidden_size}) -> {out}")
    if fmt == "onnx":
        print(_graph_summary(Path(out)))
    if args.push_to_hub:
        from bert_pl.io import hub

        folder = Path(out) if fmt == "hf" else Path(out).parent
        try:
            url = hub.push_folder(folder, args.push_to_hub)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        print(f"uploaded {folder} to {url}")


if __name__ == "__main__":
    main()
