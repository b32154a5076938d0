"""The documentation's commands are real: every `python train.py ...` / `python finetune.py ...` written in README.md
and docs/*.md composes with the real configs (what `--cfg job` does, placeholders such as <run>, PATH, DIR filled in)
and its job config resolves; and the docs site builds with `mkdocs build --strict` where mkdocs is installed
(requirements-docs.txt; CI installs requirements-test.txt only, so there it is skipped)."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import compose_cfg

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENTRY = re.compile(r"(?:^|[\s(`])(?:\.venv/bin/)?python (train|finetune)\.py(?=\s|$)")
# Placeholders the docs use for the reader's own paths; any path will do for composing.
PLACEHOLDERS = {"<run>": "2026-01-01_00-00-00", "<pid>": "1"}


def code_texts(md: str):
    """Fenced code blocks (each line, `\\` continuations joined) and inline code spans (line breaks inside joined)."""
    fences = re.findall(r"^```[^\n]*\n(.*?)^```", md, flags=re.S | re.M)
    for block in fences:
        yield from block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", md, flags=re.S | re.M)
    for span in re.findall(r"`([^`]+)`", prose):
        yield span.replace("\n", " ")


def commands(md: str):
    """(script, overrides) of each train.py / finetune.py command in a Markdown text."""
    for text in code_texts(md):
        for m in ENTRY.finditer(text):
            rest = text[m.end():]
            rest = re.split(r"\s#|&&|\|\||;|\|| >|<<<", rest)[0]  # the command ends at a comment or a shell operator
            yield m.group(1), rest.split()


def overrides_of(tokens):
    """The overrides as `--cfg job` would compose them: -m dropped (a sweep's first value of each list is one job),
    optional `[key=value]` unwrapped, placeholders filled, Hydra's own flags and hydra/ settings left out."""
    out, skip = [], False
    for tok in tokens:
        if skip or tok in ("-m", "--multirun"):
            skip = False
            continue
        if tok in ("--cfg", "-c", "--package", "-p"):  # Hydra flags with a value
            skip = True
            continue
        if tok.startswith("--") or tok.startswith("hydra/") or tok.startswith("hydra.") or tok == "OVERRIDES":
            continue
        if tok.startswith("[") and tok.endswith("]") and "=" in tok:
            tok = tok[1:-1]
        for k, v in PLACEHOLDERS.items():
            tok = tok.replace(k, v)
        key, _, value = tok.partition("=")
        if "," in value and not value.startswith("["):  # a sweep (lr=1e-5,2e-5): its first job
            value = value.split(",")[0]
        out.append(f"{key}={value}")
    return out


def documented():
    found = []
    for path in DOCS:
        for script, tokens in commands(path.read_text(encoding="utf-8")):
            found.append(pytest.param(script, tokens, id=f"{path.name}: {script}.py {' '.join(tokens)}"[:150]))
    return found


DOCUMENTED = documented()


def test_the_docs_hold_commands():
    scripts = {p.values[0] for p in DOCUMENTED}
    assert len(DOCUMENTED) >= 40 and scripts == {"train", "finetune"}, len(DOCUMENTED)


def compose_job(script, overrides, tmp_path):
    cfg = compose_cfg(script, overrides, output_dir=tmp_path)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return OmegaConf.to_container(job, resolve=True)  # every ${...} of the job resolves


@pytest.mark.parametrize("script,tokens", DOCUMENTED)
def test_documented_command_composes(script, tokens, tmp_path):
    job = compose_job(script, overrides_of(tokens), tmp_path)
    for tok in overrides_of(tokens):  # each plain override landed where it says
        key, _, value = tok.partition("=")
        if key.startswith("+") or "/" in key or "." not in key or value.startswith(("[", "{")):
            continue
        node = job
        for part in key.split("."):
            node = node[part]
        assert str(node).lower() == value.lower() or _same_number(node, value), (key, node, value)


def _same_number(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def test_the_check_can_fail(tmp_path):
    """A misspelt key in a documented command would be caught: composing refuses it."""
    script, tokens = "finetune", ["task=text_classification", "data.train_flie=x.csv"]
    with pytest.raises(Exception, match="train_flie"):
        compose_job(script, overrides_of(tokens), tmp_path)
    assert sorted(commands("run `python train.py data.nsp=false` then\n```\npython finetune.py task=rte \\\n"
                         "    pretrained=PATH   # a comment\n```\n")) == [
        ("finetune", ["task=rte", "pretrained=PATH"]), ("train", ["data.nsp=false"])]


MKDOCS = shutil.which("mkdocs") or next((str(p) for p in [ROOT / ".venv-docs" / "bin" / "mkdocs"] if p.exists()),
                                        None)


@pytest.mark.skipif(MKDOCS is None, reason="mkdocs is not installed (pip install -r requirements-docs.txt, e.g. in "
                                           ".venv-docs); CI installs requirements-test.txt only")
def test_docs_site_builds_strict(tmp_path):
    """`mkdocs build --strict`: every page in the nav exists, every link and anchor between pages resolves, the
    configuration reference is generated from conf/ and the API pages from the docstrings."""
    proc = subprocess.run([MKDOCS, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": str(Path(MKDOCS).parent) + ":/usr/bin:/bin", "DISABLE_MKDOCS_2_WARNING": "true",
                               "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "data.batch_size" in page and "bert_base" in page


def test_config_reference_lists_every_option(tmp_path):
    """The generated reference names every config file of conf/ and every key of one (no mkdocs needed)."""
    out = tmp_path / "configuration.md"
    subprocess.run([sys.executable, str(ROOT / "docs" / "gen_config_reference.py"), str(out)], check=True)
    text = out.read_text()
    for f in (ROOT / "conf").rglob("*.yaml"):
        if f.parent != ROOT / "conf":
            assert f"`{f.relative_to(ROOT).as_posix()}`" in text, f
    cfg = OmegaConf.load(ROOT / "conf" / "model" / "bert_base.yaml")
    for key in cfg:
        assert f"| `{key}` |" in text, key


def test_documented_modules_and_scripts_exist():
    """`python -m MODULE`, `python benchmarks/X.py` and `bash benchmarks/X.sh` named in the docs exist."""
    import importlib.util

    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS)
    modules = set(re.findall(r"python -m ([A-Za-z_][\w.]*)", text)) - {"pytest", "venv", "pip"}
    scripts = set(re.findall(r"(?:python|bash) ((?:benchmarks|examples|docs)/[\w/]+\.(?:py|sh))", text))
    assert modules and scripts
    missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    missing += [s for s in sorted(scripts) if not (ROOT / s).exists()]
    assert not missing, missing
