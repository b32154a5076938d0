"""Readers of labelled and unlabelled rows shared by the task families and by prediction: local csv/tsv/json/jsonl/
parquet files and `datasets` hub datasets, one row dict at a time with its line number, and the checks every family
gives the same one-line error for (not UTF-8, a column named twice, a number or list where text belongs).
"""
from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from bert_pl.tasks.base import TaskDataError

EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
# Column pairs/singles looked for when data.text_columns is not given, in this order.
TEXT_COLUMN_CANDIDATES = (("sentence1", "sentence2"), ("premise", "hypothesis"), ("question", "sentence"),
                          ("question1", "question2"), ("text",), ("sentence",))
ID_COLUMN_CANDIDATES = ("id", "idx", "index", "guid")
CHUNK = 4096  # rows tokenised at a time


def read_rows(path: Path) -> Tuple[List[str], Iterator[Tuple[int, dict]]]:
    """(column names, iterator of (line or row number, row dict)) for a local file, chosen by extension."""
    path = Path(path)
    if not path.is_file():
        from bert_pl.io.missing import link_problem, resolved_parent

        raise TaskDataError(f"data file {path} {link_problem(path) or 'not found'} (looked in "
                            f"{resolved_parent(path)}); check data.train_file / "
                            f"data.validation_file / data.test_file")
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise TaskDataError(f"{path}: unsupported extension {suffix!r}; supported: {', '.join(EXTENSIONS)}")
    if path.stat().st_size == 0:
        raise TaskDataError(f"{path}: the file is empty")
    read = {".csv": lambda p: _read_delimited(p, ","), ".tsv": lambda p: _read_delimited(p, "\t"),
            ".parquet": _read_parquet}.get(suffix, _read_json)
    try:
        columns, rows = read(path)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    return columns, _utf8_checked(path, rows)


def _utf8_checked(path: Path, rows):
    try:
        yield from rows
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


def _not_utf8(path: Path) -> TaskDataError:
    """Where the first byte that is not UTF-8 is (the text readers decode ahead, so their own position is not it)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        line, reason = None, "not UTF-8"
    except UnicodeDecodeError as e:
        line, reason = data.count(b"\n", 0, e.start) + 1, f"byte 0x{data[e.start]:02x} is not UTF-8"
    return TaskDataError(f"{path}: {f'line {line}: ' if line else ''}{reason}; save the file as UTF-8")


def _read_delimited(path: Path, delimiter: str):
    f = open(path, encoding="utf-8-sig", newline="")
    # TSV: quotes are text (tabs never occur inside a field); CSV: standard quoting.
    reader = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    try:
        header = next(reader)
    except StopIteration:
        f.close()
        raise TaskDataError(f"{path}: the file is empty") from None
    except csv.Error as e:
        f.close()
        raise TaskDataError(f"{path}: line 1: {e}") from None
    header = [h.strip() for h in header]
    refuse_repeated_columns(path, header)

    def rows():
        with f:
            try:
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # blank line
                    if len(row) != len(header):
                        raise TaskDataError(f"{path}: line {reader.line_num}: {len(row)} fields, the header has "
                                            f"{len(header)} ({', '.join(header)}); quote fields that contain "
                                            f"{'tabs' if delimiter == chr(9) else 'commas'}")
                    yield reader.line_num, dict(zip(header, row))
            except csv.Error as e:
                raise TaskDataError(f"{path}: line {reader.line_num}: {e}") from None

    return header, rows()


def refuse_repeated_columns(path: Path, names: Sequence[str], where: str = "the header") -> None:
    """A name given twice would silently read one of the two columns (the last): a one-line error instead."""
    seen = set()
    for name in names:
        if name in seen:
            places = [i + 1 for i, n in enumerate(names) if n == name]
            raise TaskDataError(f"{path}: {where} names column {name!r} twice (columns {places[0]} and {places[1]}); "
                                f"rename or remove one")
        seen.add(name)


def _object_without_repeated_keys(pairs):
    """json.loads would keep the last of two equal keys without a word."""
    row = dict(pairs)
    if len(row) != len(pairs):
        seen = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key {repeated!r} appears twice in one object")
    return row


def text_value(value, column: str) -> str:
    """A text field of a row: a string (empty when missing). A number, list or object where text is expected is a
    mistake in the file (`"text": 12345`, `["a", "b"]`), never turned into text; raises ValueError with the reason."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        kind = "a list"
    elif isinstance(value, dict):
        kind = "an object"
    elif isinstance(value, (bool, np.bool_)):
        kind = "a boolean"
    elif isinstance(value, (int, float, np.number)):
        kind = "a number"
    else:
        kind = f"a {type(value).__name__}"
    shown = str(value if not isinstance(value, np.ndarray) else value.tolist())
    raise ValueError(f"{column!r} holds {kind} ({shown[:40]}), not a text; write it as a string (\"...\") or point "
                     f"the text column setting at the text")


def _read_json(path: Path):
    with open(path, encoding="utf-8-sig") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):  # one JSON array of objects
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_object_without_repeated_keys)
        except json.JSONDecodeError as e:
            raise TaskDataError(f"{path}: not valid JSON ({e})") from None
        except ValueError as e:
            raise TaskDataError(f"{path}: {e}; rename or remove one") from None
        items = [(i + 1, r) for i, r in enumerate(data)]
    else:
        items = None
    first = None

    def json_lines():
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield lineno, json.loads(line, object_pairs_hook=_object_without_repeated_keys)
                    except json.JSONDecodeError as e:
                        raise TaskDataError(f"{path}: line {lineno}: not valid JSON ({e.msg}); expected one "
                                            f"object per line (JSON lines) or one JSON array") from None
                    except ValueError as e:
                        raise TaskDataError(f"{path}: line {lineno}: {e}; rename or remove one") from None

    source = iter(items) if items is not None else json_lines()
    first = next(source, None)
    if first is None:
        raise TaskDataError(f"{path}: holds no rows")

    def rows():
        for lineno, row in itertools.chain([first], source):
            if not isinstance(row, dict):
                raise TaskDataError(f"{path}: row {lineno}: expected an object with named fields, got "
                                    f"{type(row).__name__}")
            yield lineno, row

    return list(first[1].keys()) if isinstance(first[1], dict) else [], rows()


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise TaskDataError(f"{path}: not a readable parquet file ({e})") from None

    def rows():
        n = 0
        for batch in pf.iter_batches(batch_size=CHUNK):
            for row in batch.to_pylist():
                n += 1
                yield n, row

    refuse_repeated_columns(path, pf.schema_arrow.names, "the schema")
    return list(pf.schema_arrow.names), rows()


def read_hub_rows(name: str, config: Optional[str], split: str):
    """(columns, rows, ClassLabel names or None) of a `datasets` hub split (online only)."""
    import datasets

    from bert_pl.io.hub import require_online

    require_online(f"the hub dataset {name}", "data.train_file=... data.validation_file=... (local csv/tsv/json/"
                                              "jsonl/parquet files)", repo_id=name, repo_type="dataset")
    ds = datasets.load_dataset(name, config, split=split)
    names = {c: f.names for c, f in ds.features.items() if hasattr(f, "names")}
    return list(ds.column_names), ((i + 1, r) for i, r in enumerate(ds)), names


def hub_has_split(name: str, config: Optional[str], split: str) -> bool:
    """Whether a hub dataset has that split (False offline or for an unknown dataset: nothing to predict)."""
    import datasets

    try:
        return split in datasets.get_dataset_split_names(name, config)
    except Exception:  # noqa: BLE001 - offline or unknown
        return False
