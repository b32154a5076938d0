"""Convert any supported checkpoint (bert-pl .ckpt, Hugging Face folder, Google TF folder, hub id) to a Hugging Face
folder, or to a bert-pl .ckpt.

    python -m bert_pl.convert SRC DST              # DST: a folder -> Hugging Face format
    python -m bert_pl.convert SRC DST.ckpt         # a bert-pl checkpoint usable as pretrained=
"""
from __future__ import annotations

import argparse
import logging
import sys

from bert_pl.io import checkpoints


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bert_pl.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--format", choices=["hf", "ours"], default=None,
                    help="output format (default: 'ours' when DST ends in .ckpt, else 'hf')")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fmt = args.format or ("ours" if args.dst.endswith(".ckpt") else "hf")
    try:
        ckpt = checkpoints.resolve(args.src)
        out = checkpoints.save_ours(ckpt, args.dst) if fmt == "ours" else checkpoints.save_huggingface(ckpt, args.dst)
    except (checkpoints.CheckpointError, OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"{ckpt.kind} checkpoint ({ckpt.head}, {ckpt.config.num_hidden_layers} layers, hidden "
          f"{ckpt.config.hidden_size}) -> {out}")


if __name__ == "__main__":
    main()
