"""What predict.py runs: read inputs (text=, stdin, a file), predict, write JSON lines (or a console table).

How one line or row becomes one input, and what a file in the family's own format holds, is the head's Predictor's
(bert_pl.tasks.predictor); this module only finds the lines and rows, keeps blank lines in their place, and guards
the output file.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import List

from bert_pl.inference.model import Model, layer_list, load, positive_int
from bert_pl.tasks.predictor import PredictError, Predictor

log = logging.getLogger("bert_pl")

MODES = ("predict", "fill_mask", "embed")
# The output line of a blank input line (predict.py keeps one output line per input line).
BLANK_LINE_RESULT = {"skipped": "blank line"}
# Model weights and saved state: never a name for a predictions file.
_MODEL_SUFFIXES = (".ckpt", ".safetensors", ".bin", ".onnx", ".pt", ".pth", ".h5", ".msgpack", ".pb", ".index",
                   ".pkl", ".pickle", ".npz", ".npy")
# Keys of predict.py's output lines: an existing file whose first line has only these may be replaced (a data file
# has its text fields besides, e.g. {"text", "label"}).
_RESULT_KEYS = {"id", "label", "labels", "probabilities", "score", "answer", "entities", "words", "masks", "embedding",
                "similarity", *BLANK_LINE_RESULT}


def read_inputs(cfg, predictor: Predictor):
    """(ids or None, inputs) from `text=`, `input=-` (stdin) or a file. Plain text (.txt, stdin): one input per line
    (`predictor.from_fields` reads its tab-separated fields); a blank line inside the text is kept as None (its output
    line says it was skipped, so output line N is input line N), blank lines at the end are dropped. A file in the
    family's own format (`predictor.read_file`), else csv/tsv/json/jsonl/parquet rows (`predictor.read_rows`)."""
    from bert_pl.tasks.readers import read_rows

    if cfg.text is not None:
        if not str(cfg.text).strip():
            raise PredictError("text= is empty: pass the text to predict, text=\"...\" (or input=FILE)")
        return None, [predictor.from_fields(str(cfg.text).rstrip("\n").split("\t"), "text=")]
    if cfg.input is None:
        raise PredictError("nothing to predict: pass input=FILE (or input=- for stdin) or text=\"...\"")
    suffix = Path(cfg.input).suffix.lower() if cfg.input != "-" else ""
    if cfg.input == "-" or suffix in ("", ".txt"):
        lines = sys.stdin.read().splitlines() if cfg.input == "-" else _read_text(Path(cfg.input))
        where = "stdin" if cfg.input == "-" else cfg.input
        while lines and not lines[-1].strip():
            lines.pop()
        inputs = [predictor.from_fields(line.split("\t"), f"{where}: line {n}") if line.strip() else None
                  for n, line in enumerate(lines, 1)]
        if not any(x is not None for x in inputs):
            raise PredictError(f"{where}: no input lines")
        blank = [n for n, x in enumerate(inputs, 1) if x is None]
        if blank:
            shown = ", ".join(map(str, blank[:5])) + (", ..." if len(blank) > 5 else "")
            log.warning("%s: %d blank line(s) (line %s) get the output line %s, so that output line N is input "
                        "line N", where, len(blank), shown, json.dumps(BLANK_LINE_RESULT))
        return None, inputs
    path = Path(cfg.input)
    if not path.is_file():
        raise PredictError(f"input file {path} not found")
    own = predictor.read_file(path)
    if own is not None:
        return None, own
    columns, rows = read_rows(path)
    ids, inputs = predictor.read_rows(str(cfg.input), columns, rows, cfg.text_columns, cfg.id_column)
    if not inputs:
        raise PredictError(f"{cfg.input}: no rows")
    return ids, inputs


def _read_text(path: Path) -> List[str]:
    if not path.is_file():
        raise PredictError(f"input file {path} not found")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise PredictError(f"{path}: not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8") from None


def check_output(output, input_file=None, model=None) -> None:
    """Refuse an output= that would destroy something: a model/checkpoint file (by name or inside a checkpoints/
    folder), the input file or the model (also through a link), a folder, or any existing file that is not an
    earlier predictions file of predict.py."""
    if "://" in str(output):
        return  # a remote location: nothing local to protect
    out = Path(str(output)).expanduser()
    fix = "pass a new file, e.g. output=predictions.jsonl"
    if out.suffix.lower() in _MODEL_SUFFIXES:
        raise PredictError(f"output={output}: a {out.suffix} file holds model weights, not predictions (JSON lines); "
                           f"{fix}")
    if "checkpoints" in out.resolve().parts[:-1]:
        raise PredictError(f"output={output} is inside a run's checkpoints/ folder; {fix}")
    if out.is_dir():
        raise PredictError(f"output={output} is a folder; {fix}")
    if not out.exists():
        return
    for what, other in (("the input file", input_file), ("the model", model)):
        if other not in (None, "-") and Path(str(other)).expanduser().exists() and \
                os.path.samefile(out, Path(str(other)).expanduser()):
            raise PredictError(f"output={output} is {what} ({other}): predictions never replace it; {fix}")
    with open(out, "rb") as f:
        first = f.readline(1 << 16).strip()
    try:
        row = json.loads(first.decode("utf-8")) if first else {}
    except (UnicodeDecodeError, ValueError):
        row = None
    if not isinstance(row, dict) or (row and not (set(row) <= _RESULT_KEYS and set(row) - {"id"})):
        raise PredictError(f"output={output} exists and is not a predictions file of predict.py, so it is not "
                           f"replaced; {fix} (or delete that file first)")


def _as_text(x) -> str:
    return x if isinstance(x, str) else " ".join(x)


def run_predict(cfg) -> list:
    """predict.py: load the model, read the inputs, write JSONL (one line per input, in order) or a console table."""
    # every setting is checked before the model is read: a refusal costs nothing
    positive_int("top_k", cfg.top_k)
    if cfg.layers is not None:
        layer_list(cfg.layers)
    if cfg.get("normalize") not in (None, True, False):
        raise PredictError(f"normalize={cfg.normalize!r}: use true, false or null (the model's own)")
    if cfg.mode not in ("auto", *MODES):
        raise PredictError(f"mode={cfg.mode!r}: use auto, {', '.join(MODES)}")
    if cfg.output:
        check_output(cfg.output, cfg.input, cfg.model)
    model: Model = load(cfg.model, cfg.device, cfg.batch_size, cfg.max_seq_length)
    mode = model.predictor.default_mode if cfg.mode == "auto" else cfg.mode
    # fill_mask and embed take plain texts whatever the head: read by the base Predictor
    ids, lines = read_inputs(cfg, model.predictor if mode == "predict" else Predictor(model))
    inputs = [x for x in lines if x is not None]  # blank lines get BLANK_LINE_RESULT in their place below
    if mode == "predict":
        results = model.predict(inputs)
    elif mode == "fill_mask":
        results = [{"masks": r} for r in model.fill_mask([_as_text(x) for x in inputs], top_k=cfg.top_k)]
    else:
        layers = list(cfg.layers) if cfg.layers is not None else None
        vectors = model.embed([_as_text(x) for x in inputs], layers, cfg.pooling, cfg.get("normalize"))
        results = [{"embedding": [round(float(v), 6) for v in row]} for row in vectors]
    if len(inputs) < len(lines):
        found = iter(results)
        results = [dict(BLANK_LINE_RESULT) if x is None else next(found) for x in lines]
        inputs = lines
    if ids is not None:
        results = [{"id": i, **r} for i, r in zip(ids, results)]
    if cfg.output:
        from bert_pl.io.atomic import atomic_write_text

        out = Path(str(cfg.output)).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        print(f"wrote {len(results)} predictions to {out}", file=sys.stderr)
    else:
        for x, r in zip(inputs, results):
            shown = "(blank line)" if x is None else x if isinstance(x, str) else " | ".join(
                str(v) for v in (x.values() if isinstance(x, dict) else x))
            print(f"{shown[:60]:<62}{json.dumps({k: v for k, v in r.items() if k != 'embedding'}, ensure_ascii=False)}")
    return results
