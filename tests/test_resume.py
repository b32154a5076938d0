"""Nothing lost: a fine-tuning run killed with kill -9 and resumed from its folder (dropout on, as users train)
continues in its own folder and ends exactly as the uninterrupted run; `ckpt_path=auto` finds it; `ckpt_path=`
refuses what it cannot resume, and never runs code from a file."""
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
            "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "callbacks.last_checkpoint.every_n_train_steps=7",
            "callbacks.progress_bar=null", *extra]


def rows(run_dir):
    """metrics.csv without its timings (perf/: tokens/s, MFU), which no two runs share."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_pretrained):
    full = tmp_path_factory.mktemp("full")
    res = run_cli(finetune_args(tiny_pretrained, f"hydra.run.dir={full}"))
    assert res.returncode == 0, res.stderr[-3000:]
    return full


def _step_of(ckpt):
    return torch.load(ckpt, weights_only=True)["global_step"]


def checkpoint_files(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def test_a_finished_run_holds_one_last_state_and_best_weights(uninterrupted):
    """One owner of last.ckpt: the newest state (the end of the last epoch), never a last-v1.ckpt beside it; the best
    epoch's file holds weights only."""
    files = checkpoint_files(uninterrupted)
    assert len(files) == 2 and "last.ckpt" in files and files[0].startswith("epoch"), files
    last = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 * STEPS_PER_EPOCH and last["epoch"] == 1 and last["optimizer_states"]
    best = torch.load(uninterrupted / "checkpoints" / files[0], weights_only=True)
    assert "optimizer_states" not in best and best["bert_pl"]["head"] == "classification"
    results = json.loads((uninterrupted / "results.json").read_text())
    assert results["best"]["checkpoint"].endswith(files[0])


@pytest.mark.parametrize("stop,after_step", [("kill -9", 7), ("kill -9", STEPS_PER_EPOCH), ("SIGTERM", 30)],
                         ids=["kill -9 in epoch 1", "kill -9 in epoch 2", "SIGTERM"])
def test_stopped_finetuning_resumes_from_its_folder_and_ends_exactly_as_uninterrupted(stop, after_step, tmp_path,
                                                                                      tiny_pretrained, uninterrupted):
    """kill -9 once last.ckpt has passed a given step (a step checkpoint of the first epoch; the end of the first
    epoch, after its validation, or a step of the second), resumed with ckpt_path=<run folder>; or SIGTERM at any step (the run writes
    last.ckpt at that step, exits 143 and prints the command that resumes it). Dropout on."""
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *finetune_args(tiny_pretrained, f"hydra.run.dir={killed}",
                                                            "+callbacks.slow._target_=tests.helpers.SlowSteps",
                                                            "+callbacks.slow.seconds=0.1")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, "finetune.py ended before it could be stopped"
        if last.is_file() and _step_of(last) >= after_step:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL if stop == "kill -9" else signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    k = _step_of(last)
    assert after_step <= k < 2 * STEPS_PER_EPOCH and not (killed / "results.json").exists()
    assert checkpoint_files(killed).count("last.ckpt") == 1 and not any("last-" in f for f in checkpoint_files(killed))
    if stop == "SIGTERM":
        assert proc.returncode == 143, stderr[-2000:]
        assert f"stopped by SIGTERM at step {k}: wrote {last}" in stderr
        command = stderr.split("resume with: ")[1].splitlines()[0].split()
        assert command[0].endswith("python") and command[1] == "finetune.py" and command[-1] == f"ckpt_path={last}"
        res = run_cli(command[1:])  # exactly as printed
    else:
        res = run_cli(finetune_args(tiny_pretrained, f"ckpt_path={killed}"))  # the folder: continues in killed/
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
    assert checkpoint_files(killed) == checkpoint_files(uninterrupted)
    if after_step == 7:  # a finished run resumed from its folder: nothing more to train, the same results
        res = run_cli(finetune_args(tiny_pretrained, f"ckpt_path={killed}"))
        assert res.returncode == 0, res.stderr[-3000:]
        assert rows(killed) == rows(uninterrupted) and _step_of(last) == 2 * STEPS_PER_EPOCH
        assert json.loads((killed / "results.json").read_text())["dev"] == a["dev"]


def test_ckpt_path_refuses_what_it_cannot_resume(tmp_path, tiny_pretrained):
    from bert_pl.errors import UserConfigError
    from bert_pl.training.resume import resume_checkpoint

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
    from bert_pl.io import runs

    monkeypatch.setattr(runs, "_claimed_run_dirs", {})
    first = runs.run_dir(str(tmp_path / "runs"))
    assert runs.run_dir(str(tmp_path / "runs")) == first  # one process resolves it more than once: same folder
    monkeypatch.setattr(runs, "_claimed_run_dirs", {})  # another process, same second
    second = runs.run_dir(str(tmp_path / "runs"))
    assert second == first + "-1"
    ckpt = tmp_path / "runs" / "old" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert runs.run_dir(str(tmp_path / "runs"), str(ckpt)) == str(ckpt.parent.parent.resolve())


@pytest.mark.slow  # 45 s; the per-rank random states are also checked by test_train_e2e's DDP resume
def test_two_process_ddp_finetuning_stopped_by_sigterm_resumes_where_it_stopped(tmp_path, tiny_pretrained):
    """strategy=ddp on 2 CPU processes: SIGTERM to the launcher stops both ranks at one step with last.ckpt (each
    rank's own random state in it); the printed command resumes, and the run ends exactly as the uninterrupted one."""
    ddp = ["strategy=ddp", "trainer.devices=2", "data.limit_train_examples=320",
           "callbacks.last_checkpoint.every_n_train_steps=4"]
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


class _Payload:
    """What a hostile checkpoint holds: unpickling it would create a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def test_no_entry_point_runs_code_from_a_checkpoint(tmp_path, tiny_pretrained):
    from bert_pl.errors import UserError
    from bert_pl.io.checkpoints import resolve
    from bert_pl.training.resume import resume_checkpoint

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"optimizer_states": [], "loops": {}, "state_dict": {}, "bert_pl": {"x": _Payload(marker)}}, evil)
    with pytest.raises(UserError, match="refused: the file holds pickled Python objects"):
        resume_checkpoint(evil, "classification")
    with pytest.raises(UserError, match="not a weights-only checkpoint"):
        resolve(evil)  # pretrained=, model_path=, predict.py model=, bert_pl.load, export
    for args in (["train.py", f"ckpt_path={evil}"],
                 finetune_args(tiny_pretrained, f"ckpt_path={evil}")):
        res = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"])
        assert res.returncode == 2 and "refused: the file holds pickled Python objects" in res.stderr, res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not marker.exists()


def test_ckpt_path_auto_resumes_the_newest_unfinished_run_of_the_same_settings(tmp_path, tiny_pretrained):
    args = [*finetune_args(tiny_pretrained, "data.limit_train_examples=64", "trainer.max_epochs=1"),
            f"paths.log_dir={tmp_path}", "ckpt_path=auto"]
    runs = tmp_path / "finetune" / "mrpc" / "runs"

    def folders():
        return sorted(p for p in runs.iterdir() if not p.is_symlink())

    res = run_cli(args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "no unfinished run with these settings" in res.stdout + res.stderr
    (first,) = folders()
    history = json.loads((first / "results.json").read_text())["history"]
    (first / "results.json").unlink()  # as if killed after its last step
    res = run_cli(args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming the unfinished run {first}" in res.stdout + res.stderr
    assert folders() == [first] and json.loads((first / "results.json").read_text())["history"] == history


def test_auto_matches_runs_by_their_overrides(tmp_path):
    from bert_pl.io.runs import newest_unfinished

    def run(name, overrides, finished=False):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        (tmp_path / name / "checkpoints").mkdir()
        (tmp_path / name / "checkpoints" / "last.ckpt").write_bytes(b"")
        if finished:
            (tmp_path / name / "results.json").write_text("{}")
        return (tmp_path / name).resolve()

    a = run("a", ["task=rte", "seed=1", "ckpt_path=auto"])
    run("b", ["task=rte", "seed=2"])
    run("c", ["task=rte", "seed=1"], finished=True)
    assert newest_unfinished(tmp_path, ["seed=1", "task=rte", "hydra.run.dir=x"]) == a
    assert newest_unfinished(tmp_path, ["task=rte", "seed=3"]) is None
    (tmp_path / "a" / "results.json").write_text("{}")  # finished: auto starts a new run
    assert newest_unfinished(tmp_path, ["seed=1", "task=rte"]) is None
