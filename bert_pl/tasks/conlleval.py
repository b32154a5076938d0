"""Entity-level scores as the CoNLL shared tasks' `conlleval` script computes them (Erik Tjong Kim Sang's
`conlleval`, version 2004-01-26), re-implemented: the same chunk rules, the same counting, the same report.

A tag is split at its first hyphen into a chunk tag and a type (`B-PER` -> `B`, `PER`; `O` -> `O`, ``). A chunk
starts and ends by the script's `startOfChunk` / `endOfChunk` rules, so every tagging scheme is read as given:

- IOB1 (CoNLL-2003's original): `I-` continues a chunk of the same type and starts one otherwise; `B-` only
  separates two adjacent chunks of one type.
- IOB2/BIO: every chunk starts with `B-`. An `I-` with no `B-` before it (an ill-formed prediction) starts a chunk,
  as in IOB1; an `I-` of another type ends the previous chunk and starts a new one.
- BIOES/IOBES: `S-` is a one-word chunk and `E-` ends one. The 2004 script predates these two tags (it merges
  `S-PER S-PER` into one chunk); its rules are extended with them as in the IOBES-aware `conlleval` that NER
  work uses and as `seqeval`'s default (conlleval-compatible) mode, which agree with the 2004 script on B/I/O.
- `[`, `]` and `.` (open/close bracket chunk representations) keep their rules too.

A sentence boundary (a blank line in the script's input) is an `O` token that is not counted. A chunk is correct
when the gold and the predicted chunk start at the same token, end at the same token and have the same type.
Scores are fractions (the script prints percentages); token accuracy is over the scored tokens.

    python -m bert_pl.tasks.conlleval predictions_dev.txt     # prints the script's report for a file
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

BOUNDARY = "-X-"  # the script's sentence-boundary token

# (previous chunk tag, chunk tag) pairs where a chunk ends / starts, besides a change of type
_END = {("B", "B"), ("B", "O"), ("B", "S"), ("I", "B"), ("I", "S"), ("I", "O"),
        ("E", "E"), ("E", "I"), ("E", "O"), ("E", "S"), ("E", "B"),
        ("S", "E"), ("S", "I"), ("S", "O"), ("S", "S"), ("S", "B")}
_START = {("B", "B"), ("I", "B"), ("O", "B"), ("S", "B"), ("E", "B"),
          ("B", "S"), ("I", "S"), ("O", "S"), ("S", "S"), ("E", "S"),
          ("O", "I"), ("S", "I"), ("E", "I"), ("S", "E"), ("E", "E"), ("O", "E")}


def split_tag(tag: str) -> Tuple[str, str]:
    """`B-PER` -> (`B`, `PER`): the part before the first hyphen and the rest (hyphens allowed in types)."""
    prefix, dash, kind = tag.partition("-")
    return (prefix, kind) if dash else (tag, "")


def end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """Did a chunk end between the previous and this token?"""
    return ((prev_tag, tag) in _END or (prev_tag not in ("O", ".") and prev_type != type_)
            or prev_tag in ("[", "]"))


def start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """Did a chunk start at this token?"""
    return ((prev_tag, tag) in _START or (tag not in ("O", ".") and prev_type != type_)
            or tag in ("[", "]"))


def chunks(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """The chunks of one sentence as (type, first token, last token), by the rules above."""
    out, prev, prev_type, begin = [], "O", "", 0
    for i, t in enumerate([*tags, "O"]):
        tag, type_ = split_tag(t)
        if end_of_chunk(prev, tag, prev_type, type_):
            out.append((prev_type, begin, i - 1))
        if start_of_chunk(prev, tag, prev_type, type_):
            begin = i
        prev, prev_type = tag, type_
    return out


@dataclass
class Counts:
    """What the script counts: chunks in the gold data and in the predictions, correct chunks (overall and per
    type), and tokens with the right tag."""

    correct_chunks: int = 0
    gold_chunks: int = 0
    predicted_chunks: int = 0
    correct_tags: int = 0
    tokens: int = 0
    correct_by_type: Counter = field(default_factory=Counter)
    gold_by_type: Counter = field(default_factory=Counter)
    predicted_by_type: Counter = field(default_factory=Counter)

    @property
    def types(self) -> List[str]:
        return sorted(set(self.gold_by_type) | set(self.predicted_by_type))


def count_lines(pairs: Iterable[Tuple[str, str, bool]]) -> Counts:
    """The script's loop over (gold tag, predicted tag, is a boundary) per input line."""
    c = Counts()
    in_correct = False
    last_gold, last_gold_type, last_pred, last_pred_type = "O", "", "O", ""
    for gold_tag, pred_tag, boundary in pairs:
        gold, gold_type = split_tag(gold_tag)
        pred, pred_type = split_tag(pred_tag)
        if boundary:
            pred = "O"  # sentence breaks are always out of chunk
        if in_correct:
            end_gold = end_of_chunk(last_gold, gold, last_gold_type, gold_type)
            end_pred = end_of_chunk(last_pred, pred, last_pred_type, pred_type)
            if end_gold and end_pred and last_pred_type == last_gold_type:
                in_correct = False
                c.correct_chunks += 1
                c.correct_by_type[last_gold_type] += 1
            elif end_gold != end_pred or pred_type != gold_type:
                in_correct = False
        start_gold = start_of_chunk(last_gold, gold, last_gold_type, gold_type)
        start_pred = start_of_chunk(last_pred, pred, last_pred_type, pred_type)
        if start_gold and start_pred and pred_type == gold_type:
            in_correct = True
        if start_gold:
            c.gold_chunks += 1
            c.gold_by_type[gold_type] += 1
        if start_pred:
            c.predicted_chunks += 1
            c.predicted_by_type[pred_type] += 1
        if not boundary:
            if gold == pred and gold_type == pred_type:
                c.correct_tags += 1
            c.tokens += 1
        last_gold, last_gold_type, last_pred, last_pred_type = gold, gold_type, pred, pred_type
    if in_correct:
        c.correct_chunks += 1
        c.correct_by_type[last_gold_type] += 1
    return c


def count(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]]) -> Counts:
    """Counts over sentences (lists of tags), with a boundary between sentences as the script's blank lines."""

    def lines():
        for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
            if len(g) != len(p):
                raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted tags")
            yield from ((a, b, False) for a, b in zip(g, p))
            yield "O", "O", True

    return count_lines(lines())


def _prf(correct: int, predicted: int, gold: int) -> Tuple[float, float, float]:
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def scores(c: Counts, types: Iterable[str] = ()) -> Dict[str, float]:
    """precision, recall, f1 over chunks, token accuracy, the three counts, and per type `precision_TYPE`,
    `recall_TYPE`, `f1_TYPE` for the types in gold or predictions plus `types` (so a caller can keep the same keys
    whatever was predicted), sorted."""
    p, r, f = _prf(c.correct_chunks, c.predicted_chunks, c.gold_chunks)
    out = {"precision": p, "recall": r, "f1": f, "accuracy": c.correct_tags / c.tokens if c.tokens else 0.0,
           "gold_entities": c.gold_chunks, "predicted_entities": c.predicted_chunks,
           "correct_entities": c.correct_chunks}
    for t in sorted(set(c.types) | set(types)):
        tp, tr, tf = _prf(c.correct_by_type[t], c.predicted_by_type[t], c.gold_by_type[t])
        out.update({f"precision_{t}": tp, f"recall_{t}": tr, f"f1_{t}": tf})
    return out


def evaluate(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]]) -> Dict[str, float]:
    """Entity-level scores of predicted tag sequences against gold ones, sentence by sentence."""
    return scores(count(gold, predicted))


def read_file(path, delimiter: str = " ") -> Counts:
    """Count a file in the script's input format: fields split on `delimiter` (the script's -d; a single space),
    the last two are the gold and the predicted tag; blank lines (or lines starting with -X-) separate sentences.
    Like the script, every other line is a token, `-DOCSTART-` lines included."""
    expected, pairs = None, []
    with open(path, encoding="utf-8", newline="\n") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\n").split(delimiter)
            while fields and fields[-1] == "":  # Perl's split drops trailing empty fields
                fields.pop()
            if expected is None and fields:
                expected = len(fields)
            elif fields and len(fields) != expected:
                raise ValueError(f"{path}: line {lineno}: {len(fields)} fields, expected {expected}")
            if not fields or fields[0] == BOUNDARY:
                pairs.append(("O", "O", True))
            elif len(fields) < 2:
                raise ValueError(f"{path}: line {lineno}: a token line needs a gold and a predicted tag")
            else:
                pairs.append((fields[-2], fields[-1], False))
    return count_lines(pairs)


def report(c: Counts) -> str:
    """The script's printed report."""
    p, r, f = (100 * x for x in _prf(c.correct_chunks, c.predicted_chunks, c.gold_chunks))
    lines = [f"processed {c.tokens} tokens with {c.gold_chunks} phrases; found: {c.predicted_chunks} phrases; "
             f"correct: {c.correct_chunks}."]
    if c.tokens:
        lines.append(f"accuracy: {100 * c.correct_tags / c.tokens:6.2f}%; precision: {p:6.2f}%; "
                     f"recall: {r:6.2f}%; FB1: {f:6.2f}")
    for t in c.types:
        tp, tr, tf = (100 * x for x in _prf(c.correct_by_type[t], c.predicted_by_type[t], c.gold_by_type[t]))
        lines.append(f"{t:>17}: precision: {tp:6.2f}%; recall: {tr:6.2f}%; FB1: {tf:6.2f}  "
                     f"{c.predicted_by_type[t]}")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m bert_pl.tasks.conlleval FILE   (lines: ... GOLD PREDICTED; blank line between "
                 "sentences)")
    try:
        print(report(read_file(Path(args[0]))))
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
