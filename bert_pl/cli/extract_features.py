"""Contextual token features from a pretrained BERT, like Google's extract_features.py: one JSON line per input
line, each token with its values at the requested layers (-1 = last). Inputs: `text` or `text_a ||| text_b`.

    python -m bert_pl.cli.extract_features --pretrained SRC --input_file in.txt --output_file out.jsonl --layers -1,-2,-3,-4
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from bert_pl.io import checkpoints
from bert_pl.io import tokenization
from bert_pl.model.bert import BertModel


def load_encoder(pretrained: str):
    ckpt = checkpoints.resolve(pretrained)
    if not ckpt.tokenizer_json:
        raise checkpoints.CheckpointError(f"{ckpt.source}: no vocab.txt/tokenizer.json with the weights")
    model = BertModel(ckpt.config)
    sd = {k[len("bert."):]: v for k, v in ckpt.state_dict.items() if k.startswith("bert.")}
    missing, _ = model.load_state_dict(sd, strict=False)
    if [k for k in missing if not k.startswith("pooler.")]:
        raise checkpoints.CheckpointError(f"{ckpt.source}: encoder weights missing: {missing[:5]}")
    return model.eval(), tokenization.from_json_string(ckpt.tokenizer_json)


@torch.no_grad()
def extract(model, tokenizer, lines, layers, max_seq_length: int = 128, batch_size: int = 8):
    tok = tokenizer
    tok.enable_truncation(max_seq_length, strategy="longest_first")
    tok.no_padding()
    n_layers = model.config.num_hidden_layers
    for start in range(0, len(lines), batch_size):
        chunk = lines[start:start + batch_size]
        pairs = [tuple(s.strip() for s in line.split("|||", 1)) if "|||" in line else line.strip() for line in chunk]
        encs = tok.encode_batch(pairs)
        width = max(len(e.ids) for e in encs)
        ids = torch.zeros(len(encs), width, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = torch.tensor(e.ids)
            types[i, :len(e.ids)] = torch.tensor(e.type_ids)
            mask[i, :len(e.ids)] = 1
        hidden = model(ids, types, mask, output_hidden_states=True)["hidden_states"]  # embeddings + each layer
        for i, e in enumerate(encs):
            features = []
            for t, token in enumerate(e.tokens):
                features.append({"token": token, "layers": [
                    {"index": layer, "values": [round(float(x), 6) for x in hidden[n_layers + 1 + layer if layer < 0
                                                                                    else layer][i, t]]}
                    for layer in layers]})
            yield {"linex_index": start + i, "features": features}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bert_pl.cli.extract_features", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrained", required=True)
    ap.add_argument("--input_file", required=True)
    ap.add_argument("--output_file", required=True)
    ap.add_argument("--layers", default="-1,-2,-3,-4")
    ap.add_argument("--max_seq_length", type=int, default=128)
    ap.add_argument("--batch_size", type=int, default=8)
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, a in enumerate(argv[:-1]):  # accept Google's `--layers -1,-2` (argparse would take -1,-2 for a flag)
        if a == "--layers":
            argv[i:i + 2] = [f"--layers={argv[i + 1]}"]
            break
    args = ap.parse_args(argv)
    try:
        layers = [int(x) for x in args.layers.split(",")]
        model, tok = load_encoder(args.pretrained)
        n = model.config.num_hidden_layers
        bad = [x for x in layers if not -n <= x <= n]
        if bad:
            raise ValueError(f"--layers {bad} out of range: the model has {n} layers (-1 = last, 0 = embeddings)")
        model.config.check_max_seq_length(args.max_seq_length, "--max_seq_length")  # the one rule (>= 8, <= positions)
        lines = [ln for ln in Path(args.input_file).read_text(encoding="utf-8").splitlines() if ln.strip()]
        out = Path(args.output_file)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for record in extract(model, tok, lines, layers, args.max_seq_length, args.batch_size):
                f.write(json.dumps(record) + "\n")
        tmp.replace(out)
    except (checkpoints.CheckpointError, OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {len(lines)} lines of features to {out}")


if __name__ == "__main__":
    main()
