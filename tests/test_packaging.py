"""`pip install .` (not editable) in a fresh venv: the console scripts run from another folder and find their configs
(shipped in the wheel as bert_pl/conf). Slow (a venv with torch): `pytest -m slow tests/test_packaging.py`."""
import re
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT, shared


def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements):
    return {re.split(r"[<>=!~\[; ]", r.strip(), maxsplit=1)[0].lower() for r in requirements
            if r.strip() and not r.lstrip().startswith(("#", "-r"))}


def test_optional_parts_are_extras_and_wandb_is_not_core():
    extras = project()["optional-dependencies"]
    assert {"wandb", "tensorboard", "onnx", "sweeps", "tf"} <= set(extras)
    assert names(extras["wandb"]) == {"wandb"} and names(extras["tensorboard"]) == {"tensorboard"}
    assert names(extras["onnx"]) == {"onnx", "onnxruntime"} and names(extras["tf"]) == {"tensorflow-cpu"}
    sweeps = (ROOT / "requirements-sweeps.txt").read_text().splitlines()
    assert names(extras["sweeps"]) == names(sweeps)  # the same packages as the pinned file
    assert "wandb" not in names(project()["dependencies"])
    assert "wandb" not in names((ROOT / "requirements.txt").read_text().splitlines())


def test_requires_python_matches_the_pins_and_the_tested_python():
    """numpy 2.4.6 (requirements.txt) has wheels for Python 3.11 and later only; CI runs 3.11."""
    assert project()["requires-python"] == ">=3.11"
    assert "numpy==2.4.6" in (ROOT / "requirements.txt").read_text().split()
    assert "python3.11 -m venv" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("logger,extra", [("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_a_logger_without_its_package_is_one_line_naming_the_extra(logger, extra, monkeypatch):
    from hydra.utils import instantiate

    from bert_pl.errors import UserError
    from helpers import compose_cfg

    for module in ("wandb", "tensorboard", "tensorboardX"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    cfg = compose_cfg("finetune", [f"logger={logger}"])
    with pytest.raises(Exception) as info:
        instantiate(cfg.logger[logger])
    cause = info.value.__cause__ or info.value
    assert isinstance(cause, UserError) and "\n" not in str(cause)
    assert f"logger={logger} needs the {extra} package" in str(cause)
    assert f"pip install 'bert-pl[{extra}]'" in str(cause)


@pytest.mark.slow
def test_installed_console_scripts_run_from_another_folder(tmp_path):
    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    run = lambda *cmd, **kw: subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)  # noqa: E731
    assert run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-w", wheels,
               cwd=tmp_path).returncode == 0
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    pip = venv / "bin" / "pip"
    assert run(pip, "install", "-q", "torch==2.13.0").returncode == 0
    res = run(pip, "install", "-q", *wheels.glob("*.whl"))
    assert res.returncode == 0, res.stderr[-2000:]
    res = run(venv / "bin" / "bert-pl-train", "data=sample_text",
              f"data.source.paths=[{shared('corpus', 'sample_text.txt')}]", "trainer.max_steps=3", "data.batch_size=8",
              "data.num_workers=0", "logger=[]", cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (work / "outputs" / "train" / "runs" / "latest" / "checkpoints" / "last.ckpt").is_file()
    res = run(venv / "bin" / "bert-pl-predict", "model=latest:train", "text=the [MASK] sat .", cwd=work)
    assert res.returncode == 0 and '"masks"' in res.stdout, res.stderr[-3000:]
    res = run(venv / "bin" / "bert-pl-export", "outputs/train/runs/latest", "hf", cwd=work)
    assert res.returncode == 0 and (work / "hf" / "config.json").is_file(), res.stderr[-3000:]
