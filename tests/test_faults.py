"""Faults of the machine and of the run's surroundings (full or read-only disk, out of memory, Ctrl-C, killed writes):
one line naming the problem and the fix, and nothing lost."""
import errno
import os
import stat
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from bert_pl.io import atomic
from bert_pl.io.atomic import CheckpointSaveError, atomic_torch_save, remove_stale_temporaries


def _torch_full_disk(obj, f, *args, **kwargs):
    """What torch.save does on a full disk: a partial write, then a RuntimeError raised while handling the OSError."""
    f.write(b"partial")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7766208 vs 7766100")


def test_a_full_disk_in_a_run_keeps_the_previous_last_ckpt_and_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """An in-process tiny pretraining run whose second checkpoint write hits a full disk: the entry point prints one
    line with the cause and the resume command; last.ckpt of the earlier step is intact; no temporary file left."""
    import bert_pl.training.api
    from bert_pl.cli.entry import entry_point

    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        return (real_save if len(saves) == 1 else _torch_full_disk)(obj, f, *args, **kwargs)

    monkeypatch.setattr(atomic.torch, "save", save)
    run = tmp_path / "run"
    cfg = bert_pl.training.api.compose("train", ["trainer.max_steps=4", "callbacks.last_checkpoint.every_n_train_steps=2",
                                        "data.batch_size=4", "data.source.max_chars=20000", "logger=[]",
                                        f"paths.cache_dir={tmp_path / 'cache'}", "~callbacks.progress_bar"], str(run))
    from bert_pl.training.jobs import pretrain

    with pytest.raises(SystemExit) as exit_:
        entry_point(pretrain)(cfg)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert "last.ckpt failed (the disk is full); the previous checkpoint is intact" in err
    assert f"resume with ckpt_path={run}" in err
    monkeypatch.undo()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert state["global_step"] == 2
    assert sorted(os.listdir(run / "checkpoints")) == ["last.ckpt"]


def test_a_full_disk_before_any_last_ckpt_names_the_newest_intact_checkpoint(tmp_path, monkeypatch):
    atomic_torch_save({"step": 2}, tmp_path / "checkpoints" / "step0000002.ckpt")
    monkeypatch.setattr(atomic.torch, "save", _torch_full_disk)
    with pytest.raises(CheckpointSaveError, match=r"the newest intact checkpoint is .*step0000002.ckpt\. .*"
                                                  r"resume with ckpt_path=.*step0000002.ckpt"):
        atomic_torch_save({"step": 4}, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointSaveError, match="no checkpoint was written before it"):
        atomic_torch_save({"step": 4}, tmp_path / "other" / "last.ckpt")


def test_checkpoints_get_the_umasks_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_torch_save({"x": 1}, tmp_path / "a.ckpt")
        os.umask(0o027)
        atomic_torch_save({"x": 1}, tmp_path / "b.ckpt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.ckpt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.ckpt").stat().st_mode) == 0o640


def test_stale_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    ours = [".last.ckpt.k2j_9xQa.tmp", ".step0000100.ckpt.abcdefgh.tmp"]
    others = ["last.ckpt", ".last.ckpt.tmp", "notes.tmp", ".results.json.abcdefgh.tmp", ".last.ckpt.abcdefghi.tmp"]
    for name in ours + others:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(ours)
    assert sorted(os.listdir(tmp_path)) == sorted(others)
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_a_run_start_removes_stale_temporaries_from_its_checkpoint_folder(tmp_path):
    from bert_pl.training.preemption import SaveOnPreemption

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".last.ckpt.abcd1234.tmp").write_bytes(b"\0" * 100)
    (folder / "last.ckpt").write_bytes(b"keep")
    trainer = SimpleNamespace(is_global_zero=True, checkpoint_callback=SimpleNamespace(dirpath=str(folder)))
    SaveOnPreemption().on_train_start(trainer, None)
    assert os.listdir(folder) == ["last.ckpt"]


def test_ctrl_c_prints_the_command_that_resumes_the_newest_checkpoint(tmp_path, monkeypatch, capsys):
    from bert_pl.training.preemption import SaveOnPreemption

    monkeypatch.setattr("sys.argv", ["finetune.py", "task=mrpc", "trainer.max_epochs=3"])
    run = tmp_path / "run"
    trainer = SimpleNamespace(is_global_zero=True, global_step=37,
                              checkpoint_callback=SimpleNamespace(dirpath=str(run / "checkpoints")))
    SaveOnPreemption().on_exception(trainer, None, KeyboardInterrupt())
    assert "no training state (last.ckpt) was written yet, so there is nothing to resume" in capsys.readouterr().err
    atomic_torch_save({"x": 1}, run / "checkpoints" / "last.ckpt")
    SaveOnPreemption().on_exception(trainer, None, KeyboardInterrupt())
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C) at step 37" in err
    from bert_pl.training.preemption import python_command

    assert f"resume with: {python_command()} finetune.py task=mrpc trainer.max_epochs=3 ckpt_path={run}" in err


def _one_line_exit(fn, capsys, cfg=None):
    from bert_pl.cli.entry import entry_point

    with pytest.raises(SystemExit) as exit_:
        entry_point(fn)(cfg or OmegaConf.create({"data": {"batch_size": 64}}))
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return exit_.value.code, err


@pytest.mark.parametrize("fault,expected", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "CUDA out of memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"), "DefaultCPUAllocator"),
])
def test_out_of_memory_is_one_line_with_the_batch_size_to_lower(fault, expected, capsys):
    def run(cfg):
        raise fault

    code, err = _one_line_exit(run, capsys)
    assert code == 2 and expected in err
    assert "lower data.batch_size=64" in err and "trainer.accumulate_grad_batches" in err


@pytest.mark.parametrize("errno_,expected", [(errno.EROFS, "cannot write here (Read-only file system)"),
                                             (errno.ENOSPC, "the disk is full (No space left on device)")])
def test_a_read_only_or_full_disk_anywhere_in_a_run_is_one_line(errno_, expected, capsys):
    def run(cfg):
        try:
            raise OSError(errno_, os.strerror(errno_), "/out/run/csv/metrics.csv")
        except OSError:
            raise RuntimeError("a library's wrapper")

    code, err = _one_line_exit(run, capsys)
    assert code == 2 and err.startswith(f"error: /out/run/csv/metrics.csv: {expected}")
    assert "paths.log_dir=" in err


def test_a_bug_still_shows_its_traceback():
    from bert_pl.cli.entry import entry_point

    def run(cfg):
        raise RuntimeError("index out of range in self")

    with pytest.raises(RuntimeError, match="index out of range"):
        entry_point(run)(OmegaConf.create({}))


def test_ctrl_c_outside_training_is_one_line(capsys):
    def run(cfg):
        raise KeyboardInterrupt

    code, err = _one_line_exit(run, capsys)
    assert code == 130 and err == "interrupted (Ctrl-C)\n"


@pytest.mark.parametrize("script", ["train.py", "finetune.py"])
def test_an_unwritable_run_folder_is_one_line_before_hydra_creates_it(script, tmp_path):
    """Root ignores permission bits, so the unwritable place is under a file (the same OSError path as read-only)."""
    from conftest import run_cli

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run_cli([script, f"paths.log_dir={blocker / 'outputs'}"])
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr[-3000:]
    assert f"error: cannot write the run folder {blocker / 'outputs'}" in res.stderr
    assert "paths.log_dir=" in res.stderr


def test_the_run_folder_check_covers_sweeps(tmp_path, capsys):
    from bert_pl.training.output_check import WritableOutput

    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(blocker / "multiruns")}, "run": {"dir": str(tmp_path)}}})
    WritableOutput().on_run_start(cfg)  # writable: passes, and leaves nothing behind
    assert sorted(os.listdir(tmp_path)) == ["file"]
    with pytest.raises(SystemExit) as exit_:
        WritableOutput().on_multirun_start(cfg)
    assert exit_.value.code == 2 and "cannot write the run folder" in capsys.readouterr().err


def test_a_refused_run_leaves_no_folder_but_one_that_wrote_something_stays(tmp_path, monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    from bert_pl.cli.entry import _remove_if_empty_run

    run = tmp_path / "run"
    for name in (".hydra/config.yaml", "train.log", "tokenizer/vocab.txt", "csv/hparams.yaml"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("x")
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: SimpleNamespace(
        runtime=SimpleNamespace(output_dir=str(run)))))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_text("x")
    _remove_if_empty_run()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    (run / "checkpoints" / "last.ckpt").unlink()
    _remove_if_empty_run()
    assert not run.exists()


def test_a_permission_error_names_the_file_and_the_fix(capsys):
    def run(cfg):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/cache/pretrain-x")

    code, err = _one_line_exit(run, capsys)
    assert code == 2 and err.startswith("error: /data/cache/pretrain-x: permission denied; fix its permissions")


def test_ctrl_c_during_a_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1} and os.listdir(tmp_path) == ["last.ckpt"]
