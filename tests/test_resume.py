"""Nothing lost: a fine-tuning run killed with kill -9 and resumed from last.ckpt (dropout on, as users train)
continues in its own folder and ends exactly as the uninterrupted run; `ckpt_path=` refuses what it cannot resume."""
import csv
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, run_cli, shared

STEPS_PER_EPOCH = 40  # 640 examples / batch 16


def finetune_args(tiny, *extra):
    return ["finetune.py", "task=mrpc", f"data_dir={shared('glue')}", f"pretrained={tiny}",
            "data.limit_train_examples=640", "data.limit_eval_examples=64", "data.batch_size=16",
            "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "callbacks.step_checkpoint.every_n_train_steps=7",
            "callbacks.progress_bar=null", *extra]


def rows(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_pretrained):
    full = tmp_path_factory.mktemp("full")
    res = run_cli(finetune_args(tiny_pretrained, f"hydra.run.dir={full}"))
    assert res.returncode == 0, res.stderr[-3000:]
    return full


def _step_of(ckpt):
    return torch.load(ckpt, weights_only=True)["global_step"]


@pytest.mark.parametrize("stop", ["kill -9", "SIGTERM"])
def test_stopped_finetuning_resumes_in_its_folder_and_ends_exactly_as_uninterrupted(stop, tmp_path, tiny_pretrained,
                                                                                     uninterrupted):
    """kill -9 after a step checkpoint of the second epoch (resume from that checkpoint), or SIGTERM at any step
    (the run writes last.ckpt at that step, exits 143 and prints the command that resumes it)."""
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *finetune_args(tiny_pretrained, f"hydra.run.dir={killed}",
                                                            "+callbacks.slow._target_=tests.helpers.SlowSteps",
                                                            "+callbacks.slow.seconds=0.1")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline:  # stop inside the second epoch, after its validation and a step checkpoint
        assert proc.poll() is None, "finetune.py ended before it could be stopped"
        if last.is_file() and _step_of(last) > STEPS_PER_EPOCH:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL if stop == "kill -9" else signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    k = _step_of(last)
    assert STEPS_PER_EPOCH < k < 2 * STEPS_PER_EPOCH and not (killed / "results.json").exists()
    if stop == "SIGTERM":
        assert proc.returncode == 143, stderr[-2000:]
        assert f"stopped by SIGTERM at step {k}: wrote {last}" in stderr
        command = stderr.split("resume with: ")[1].splitlines()[0].split()
        assert command[:2] == ["python", "finetune.py"] and command[-1] == f"ckpt_path={last}"
        res = run_cli(command[1:])  # exactly as printed
    else:
        res = run_cli(finetune_args(tiny_pretrained, f"ckpt_path={last}"))  # no run dir given: continues in killed/
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"results: {killed}/results.json" in res.stdout
    # every row (losses, learning rates, dev metrics per epoch) as the uninterrupted run logged it
    assert rows(killed) == rows(uninterrupted)
    assert sum(1 for r in rows(killed) if r.get("train/loss")) == 2 * STEPS_PER_EPOCH
    a, b = (json.loads((d / "results.json").read_text()) for d in (uninterrupted, killed))
    assert a["history"] == b["history"] and len(b["history"]) == 2 and a["dev"] == b["dev"]
    assert (uninterrupted / "predictions_dev.jsonl").read_text() == (killed / "predictions_dev.jsonl").read_text()
    assert (killed / ".hydra" / "overrides.yaml").is_file()  # the original run's record is kept
    assert len(list((killed / ".hydra").glob("resumed-*/overrides.yaml"))) == 1


def test_ckpt_path_refuses_what_it_cannot_resume(tmp_path, tiny_pretrained):
    from bert_pl.errors import UserConfigError
    from bert_pl.training.runner import resume_checkpoint

    with pytest.raises(UserConfigError, match="not a training checkpoint.*pass pretrained="):
        resume_checkpoint(tiny_pretrained, "classification")  # weights only: no optimizer or loop state
    with pytest.raises(UserConfigError, match="no checkpoints/last.ckpt"):
        resume_checkpoint(tmp_path, "classification")
    with pytest.raises(UserConfigError, match="no such file"):
        resume_checkpoint(tmp_path / "nope.ckpt", "classification")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(UserConfigError, match="not a readable checkpoint"):
        resume_checkpoint(tmp_path / "junk.ckpt", "classification")
    fake = {"optimizer_states": [], "loops": {}, "bert_pl": {"head": "classification", "labels": ["0", "1"]}}
    torch.save(fake, tmp_path / "mrpc.ckpt")
    with pytest.raises(UserConfigError, match="while training a classification model; this run trains a pretraining"):
        resume_checkpoint(tmp_path / "mrpc.ckpt", "pretraining")
    with pytest.raises(UserConfigError, match=r"labels \['0', '1'\], this task has \['a', 'b', 'c'\]"):
        resume_checkpoint(tmp_path / "mrpc.ckpt", "classification", ["a", "b", "c"])
    assert resume_checkpoint(tmp_path / "mrpc.ckpt", "classification", ["0", "1"]) == str(tmp_path / "mrpc.ckpt")
    # the same from the command line: one line, exit 2
    res = run_cli(["train.py", f"ckpt_path={tmp_path / 'mrpc.ckpt'}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr[-2000:]
    assert "classification model; this run trains a pretraining model" in res.stderr


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    from bert_pl.training import runner

    monkeypatch.setattr(runner, "_claimed_run_dirs", {})
    first = runner.run_dir(str(tmp_path / "runs"))
    assert runner.run_dir(str(tmp_path / "runs")) == first  # one process resolves it more than once: same folder
    monkeypatch.setattr(runner, "_claimed_run_dirs", {})  # another process, same second
    second = runner.run_dir(str(tmp_path / "runs"))
    assert second == first + "-1"
    ckpt = tmp_path / "runs" / "old" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert runner.run_dir(str(tmp_path / "runs"), str(ckpt)) == str(ckpt.parent.parent.resolve())


def test_two_process_ddp_finetuning_stopped_by_sigterm_resumes_where_it_stopped(tmp_path, tiny_pretrained):
    """strategy=ddp on 2 CPU processes: SIGTERM to the launcher stops both ranks at one step with last.ckpt (each
    rank's own random state in it); the printed command resumes, and the run ends exactly as the uninterrupted one."""
    ddp = ["strategy=ddp", "trainer.devices=2", "data.limit_train_examples=320",
           "callbacks.step_checkpoint.every_n_train_steps=4"]
    full = tmp_path / "full"
    res = run_cli(finetune_args(tiny_pretrained, *ddp, f"hydra.run.dir={full}"))
    assert res.returncode == 0, res.stderr[-3000:]
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, *finetune_args(tiny_pretrained, *ddp, f"hydra.run.dir={stopped}",
                                                            "+callbacks.slow._target_=tests.helpers.SlowSteps",
                                                            "+callbacks.slow.seconds=0.2")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = stopped / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not (last.is_file() and _step_of(last) >= 4) and time.time() < deadline:
        assert proc.poll() is None, "finetune.py ended before it could be stopped"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, stderr[-2000:]
    k = _step_of(last)
    assert 4 <= k < 20 and not (stopped / "results.json").exists()
    command = stderr.split("resume with: ")[1].splitlines()[0].split()
    res = run_cli(command[1:])
    assert res.returncode == 0, res.stderr[-3000:]
    assert rows(stopped) == rows(full)
    a, b = (json.loads((d / "results.json").read_text()) for d in (full, stopped))
    assert a["history"] == b["history"] and a["dev"] == b["dev"]
