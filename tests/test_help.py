"""Every entry point answers --help with what it takes, in-process: train.py and finetune.py list conf/'s groups and
their options (finetune.py: every task in conf/task/), predict.py its settings, the argparse commands every option
their code declares. The expected lists are read from conf/ and the commands' source, so they cannot drift."""
import ast
import importlib
import runpy
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def hydra_help(script: str, monkeypatch, capsys) -> str:
    """`python SCRIPT.py --help`, run in this process as the shell runs it (as __main__, conf/ beside it)."""
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / f"{script}.py"), run_name="__main__")
    assert stop.value.code == 0
    return capsys.readouterr().out


def groups() -> dict:
    """conf/'s config groups (folders, Hydra's own aside) and their options."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(CONF.iterdir())
            if d.is_dir() and d.name != "hydra"}


@pytest.mark.parametrize("script", ["train", "finetune"])
def test_train_and_finetune_help_list_the_groups_and_their_options(script, monkeypatch, capsys):
    text = hydra_help(script, monkeypatch, capsys)
    assert text.startswith(f"{script}.py: ")  # what it does, first
    for group, options in groups().items():
        line = next((ln for ln in text.splitlines() if ln.startswith(f"{group}: ")), None)
        assert line is not None, f"--help of {script}.py does not list the group {group}"
        assert line.split(": ", 1)[1].split(", ") == options, line
    assert sum(ln.strip().startswith(f"python {script}.py") for ln in text.splitlines()) >= 3  # examples
    assert "Traceback" not in text and "${" in text  # the settings, as composed (interpolations unresolved)
    if script == "finetune":  # every task of conf/task/, the shared *_base ones said to be no tasks
        assert "task: " + ", ".join(groups()["task"]) in text and "_base is shared settings" in text


def test_predict_help_lists_its_settings_and_the_documented_commands(capsys):
    import predict

    with pytest.raises(SystemExit) as stop:
        predict.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    settings = [k for k in OmegaConf.load(CONF / "predict.yaml") if k not in ("defaults", "hydra")]
    assert "model" in settings and all(f"\n{key}:" in text for key in settings), text
    for example in [line.strip() for line in predict.__doc__.splitlines() if line.strip().startswith("python")]:
        assert example.replace("\t", "\\t") in text  # as documented, `$'...'` included (not eaten as a template)


def declared_options(module) -> list:
    """The option strings a command's source passes to add_argument."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    return [a.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "add_argument"
            for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]


@pytest.mark.parametrize("command", ["bert_pl.cli.evaluate", "bert_pl.cli.extract_features", "bert_pl.cli.plot",
                                     "bert_pl.cli.export"])
def test_argparse_commands_list_their_options(command, capsys):
    module = importlib.import_module(command)
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    options = declared_options(module)
    assert options and all(option in text for option in options), (options, text)
    assert text.startswith("usage: python -m bert_pl.")
