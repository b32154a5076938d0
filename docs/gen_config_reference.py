"""Writes the configuration reference (reference/configuration.md) from conf/ at every `mkdocs build`, so it cannot
drift from the configs: every group, every option file, every key with its default and its comment. Also copies the
benchmark plots the docs show (benchmarks/results/**/*.png -> img/). Run by mkdocs-gen-files (mkdocs.yml); run alone
(`python docs/gen_config_reference.py OUT.md`) it writes the page to a file, which the tests use."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
PRIMARY = {"train.yaml": "python train.py", "finetune.yaml": "python finetune.py", "predict.yaml": "python predict.py",
           "serve.yaml": "python serve.py"}
PLOTS = ["benchmarks/results/pretraining/time_to_accuracy_bert_mini.png",
         "benchmarks/results/pretraining/time_to_accuracy_bert_base.png"]
KEY = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[^\s#:][^#:]*?|\"[^\"]*\"|'[^']*'):(?:\s+(?P<value>[^#]*?))?\s*(?:#\s?(?P<comment>.*))?$")


def split_comment(line: str):
    """(code, comment) of a YAML line: the first ' #' outside quotes and brackets' strings starts the comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), None


def options(path: Path):
    """(header comment, [(dotted key, default, comment)]) of one YAML file, read line by line (comments kept)."""
    header, rows, stack = [], [], []  # stack: (indent, key)
    last = None
    in_header = True
    pending = []  # comment lines at column 0 between keys: a note on the key that follows
    for raw in path.read_text(encoding="utf-8").splitlines():
        code, comment = split_comment(raw)
        if not code.strip():
            if comment is not None and in_header and not raw.startswith(" "):
                header.append(comment)
            elif comment is not None and not raw.startswith(" "):
                pending.append(comment)
            elif comment is not None and last is not None:  # an indented comment line continues the key's comment
                rows[last][2] = (rows[last][2] + " " + comment).strip()
            continue
        in_header = False
        indent = len(code) - len(code.lstrip())
        body = code.strip()
        if body.startswith("- ") or body == "-":
            if rows and last is not None and stack:  # list item: append to the parent's default
                item = body[1:].strip()
                parent = rows[last]
                parent[1] = (parent[1] + ("" if parent[1] in ("", "[") else ", ") + item) if parent[1] != "" else item
                if comment:
                    parent[2] = (parent[2] + f" ({item}: {comment})").strip()
            continue
        if ":" not in body:
            continue
        key, _, value = body.partition(":")
        key, value = key.strip(), value.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        rows.append([dotted, value, " ".join(pending + [comment or ""]).strip()])
        pending = []
        last = len(rows) - 1
        stack.append((indent, key))
    # keys that only hold others keep their comment but show no default
    return " ".join(header), [(k, v, c) for k, v, c in rows]


def cell(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"`{text}`" if text else ""


def file_section(path: Path, level: str) -> list[str]:
    header, rows = options(path)
    lines = [f"{level} `{path.stem}`", "", f"`{path.relative_to(ROOT).as_posix()}`" + (f": {header}" if header else ""), ""]
    if rows:
        lines += ["| key | default | comment |", "|---|---|---|"]
        lines += [f"| `{k}` | {cell(v)} | {c.replace('|', chr(92) + '|')} |" for k, v, c in rows]
        lines.append("")
    return lines


def page() -> str:
    out = ["# Configuration reference", "",
           "Generated from `conf/` by `docs/gen_config_reference.py` at every docs build: every config group, each of",
           "its options (`group=option` on the command line) and every key with its default and comment. Any key is",
           "set with `key=value` (`data.batch_size=16`); `python train.py --cfg job` prints the composed config.", ""]
    out += ["## Entry points", ""]
    for name, cmd in PRIMARY.items():
        if (CONF / name).exists():
            out += [f"### `{cmd}`", ""] + file_section(CONF / name, "####")[2:]
    out += ["## Groups", ""]
    for group in sorted(p for p in CONF.rglob("*") if p.is_dir() and any(p.glob("*.yaml"))):
        rel = group.relative_to(CONF).as_posix()
        files = sorted(group.glob("*.yaml"))
        out += [f"### `{rel}`", "", "Options: " + ", ".join(f"`{rel}={f.stem}`" for f in files), ""]
        for f in files:
            out += file_section(f, "####")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # standalone: write the page where asked
    Path(sys.argv[1] if len(sys.argv) > 1 else "configuration.md").write_text(page(), encoding="utf-8")
else:  # under mkdocs-gen-files
    import mkdocs_gen_files

    with mkdocs_gen_files.open("reference/configuration.md", "w") as f:
        f.write(page())
    for plot in PLOTS:
        with mkdocs_gen_files.open(f"img/{Path(plot).name}", "wb") as f:
            f.write((ROOT / plot).read_bytes())
