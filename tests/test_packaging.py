"""`pip install .` (not editable) in a fresh venv: the console scripts run from another folder and find their configs
(shipped in the wheel as bert_pl/conf). Slow (a venv with torch): `pytest -m slow tests/test_packaging.py`."""
import subprocess
import sys

import pytest

from conftest import ROOT, shared


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
