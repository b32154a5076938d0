"""Optimiser rules, crash-safe saves, numerical faults and secrets."""
import errno
import re
import os

import pytest
import torch

from bert_pl.io.atomic import CheckpointSaveError, atomic_torch_save
from bert_pl.training.optim import Lamb, linear_warmup_decay, param_groups


def test_lamb_matches_the_papers_update_rule():
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    grads = [torch.randn(5, 3) for _ in range(3)]
    p = torch.nn.Parameter(w0.clone())
    opt = Lamb([p], lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
    w, m, v = w0.clone().double(), torch.zeros(5, 3, dtype=torch.double), torch.zeros(5, 3, dtype=torch.double)
    for t, g in enumerate(grads, 1):
        p.grad = g.clone()
        opt.step()
        g = g.double()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        r = (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)).sqrt() + 1e-6) + 0.01 * w
        w = w - 0.1 * (w.norm() / r.norm()) * r
    torch.testing.assert_close(p.detach().double(), w, atol=1e-6, rtol=1e-5)


def test_gradient_accumulation_equals_the_big_batch():
    from bert_pl.model.bert import BertConfig, BertForPreTraining

    cfg = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (8, 16))
    labels = torch.full_like(ids, -100)
    labels[:, [2, 5, 9]] = ids[:, [2, 5, 9]]  # the same number of predictions per half: mean of means = mean
    nsp = torch.randint(0, 2, (8,))
    torch.manual_seed(1)
    big = BertForPreTraining(cfg)
    small = BertForPreTraining(cfg)
    small.load_state_dict(big.state_dict())
    big(ids, mlm_labels=labels, next_sentence_label=nsp)["loss"].backward()
    for half in (slice(0, 4), slice(4, 8)):
        (small(ids[half], mlm_labels=labels[half], next_sentence_label=nsp[half])["loss"] / 2).backward()
    for (name, a), (_, b) in zip(big.named_parameters(), small.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_no_weight_decay_on_bias_and_layernorm():
    from bert_pl.model.bert import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32))
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(not names[id(p)].endswith("bias") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01


def test_linear_warmup_then_decay_matches_transformers_schedule():
    from transformers import get_linear_schedule_with_warmup

    def lrs(make_sched, steps=10):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched, out = make_sched(opt), []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    ours = lrs(lambda opt: linear_warmup_decay(opt, total_steps=10, warmup_ratio=0.2))
    assert ours[:4] == pytest.approx([0.0, 0.5, 1.0, 0.875]) and ours[-1] == pytest.approx(0.125)
    assert ours == pytest.approx(lrs(lambda opt: get_linear_schedule_with_warmup(opt, 2, 10)))
    assert lrs(lambda opt: linear_warmup_decay(opt, total_steps=4))[:2] == pytest.approx([1.0, 0.75])


def test_full_disk_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)

    def full_disk(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointSaveError, match="disk is full.*previous checkpoint is intact"):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]  # no partial temporary file left


def test_read_only_output_folder(tmp_path, monkeypatch):
    """A folder the run may not write into (simulated: root ignores permission bits) is named, with the fix."""
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    message = r"cannot write checkpoints into .*ro \(Permission denied\).*writable"
    with pytest.raises(CheckpointSaveError, match=message):
        atomic_torch_save({"x": 1}, tmp_path / "ro" / "last.ckpt")
    assert not (tmp_path / "ro" / "last.ckpt").exists()


def test_unwritable_output_folder_is_explained(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointSaveError, match="cannot write checkpoints into .*file/ckpts"):
        atomic_torch_save({"x": 1}, blocker / "ckpts" / "last.ckpt")


class _FakeTrainer:
    from bert_pl.training.checkpointing import LastCheckpoint

    callbacks = [LastCheckpoint()]
    callbacks[0].last_model_path = "/runs/x/checkpoints/last.ckpt"


def _module(on_nonfinite):
    from bert_pl.pretraining.module import PretrainingModule

    m = PretrainingModule({"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "intermediate_size": 32}, on_nonfinite=on_nonfinite)
    m._trainer = _FakeTrainer()
    return m


def test_nonfinite_loss_stops_naming_step_and_checkpoint(monkeypatch):
    from bert_pl.pretraining.module import PretrainingModule
    from bert_pl.training.module import NonFiniteLossError

    monkeypatch.setattr(PretrainingModule, "global_step", property(lambda self: 123))
    m = _module("stop")
    with pytest.raises(NonFiniteLossError, match=r"at step 123; last checkpoint before it: .*last.ckpt"):
        m.check_finite(torch.tensor(float("nan")))
    assert m.check_finite(torch.tensor(1.5)) == 1.5
    assert _module("skip").check_finite(torch.tensor(float("inf"))) is None  # Lightning skips the step


def test_wandb_logger_is_offline_without_a_key(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    from bert_pl.io.atomic import wandb_logger

    logger = wandb_logger(project="t", save_dir=str(tmp_path), offline=False)
    assert logger._offline is True and os.environ["WANDB_MODE"] == "offline"


@pytest.mark.parametrize("script,override", [("finetune.py", "trainer.max_steps=0"), ("train.py", "trainer.max_steps=0"),
                                             ("finetune.py", "trainer.max_epochs=0"),
                                             ("finetune.py", "+trainer.limit_train_batches=0")])
def test_a_run_that_trains_nothing_is_refused(script, override, tmp_path):
    from conftest import run_cli

    res = run_cli([script, override, f"hydra.run.dir={tmp_path / 'run'}"])
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr[-2000:]
    assert override.lstrip("+") + " trains nothing" in res.stderr
    if script == "finetune.py":
        assert "train=false model_path=" in res.stderr


BAD_CONFIGS = [  # from the command line: one line, exit 2, no run folder left
    ("finetune.py", ["optimizer.lr=-1"], "optimizer.lr=-1: must be > 0"),
    ("finetune.py", ["task=glue_base"], "task=glue_base is what several tasks share, not a task: pass task= one of"),
    ("train.py", ["accelerator=tpu"], "accelerator=tpu needs torch-xla, which is not installed here"),
    ("train.py", ["accelerator=gpu"], "accelerator=gpu: this machine has no CUDA GPU"),
]


@pytest.mark.parametrize("name,overrides,message", [
    ("train", ["optimizer.lr=-1"], "optimizer.lr=-1: must be > 0"),
    ("finetune", ["module.scheduler.warmup_ratio=1.5"], "module.scheduler.warmup_ratio=1.5: must be in [0, 1)"),
    ("finetune", ["optimizer.weight_decay=-0.1"], "optimizer.weight_decay=-0.1: must be >= 0"),
    ("finetune", ["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1: must be > 0"),
    ("finetune", ["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0: must be at least 1"),
    ("finetune", ["optimizer.betas=[0.9,1.5]"], "optimizer.betas=[0.9, 1.5]: each must be in [0, 1)"),
    ("finetune", ["task=squad_base"], "task=squad_base is what several tasks share"),
    ("train", ["trainer.max_steps=-5"], "trainer.max_steps=-5: use a positive number (or -1 for no limit)"),
    ("finetune", ["train=false", "ckpt_path=run/checkpoints/last.ckpt"], "ckpt_path= resumes training"),
])
def test_composed_settings_are_checked_in_one_line(name, overrides, message):
    from helpers import compose_cfg

    from bert_pl.errors import UserConfigError
    from bert_pl.training.checks import check_config

    with pytest.raises(UserConfigError, match=re.escape(message)):
        check_config(compose_cfg(name, overrides))


@pytest.mark.parametrize("script,overrides,message", BAD_CONFIGS, ids=[" ".join(c[1]) + " " + c[0] for c in BAD_CONFIGS])
def test_bad_settings_are_one_line_exit_2_and_leave_no_run_folder(script, overrides, message, tmp_path):
    import importlib.util

    from conftest import run_cli

    if "accelerator=gpu" in overrides and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    if "accelerator=tpu" in overrides and importlib.util.find_spec("torch_xla") is not None:
        pytest.skip("torch-xla is installed here")
    res = run_cli([script, *overrides, f"paths.log_dir={tmp_path}"], env={"BERT_PL_OUTPUTS": str(tmp_path)})
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr[-2000:]
    assert not [p for p in tmp_path.glob("**/runs/*") if p.is_dir()]  # nothing half-written


def test_malformed_hf_config_names_the_file(tmp_path):
    from bert_pl.errors import UserError
    from bert_pl.io.checkpoints import resolve

    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"config.json: not valid JSON \(.*line 1 column 2"):
        resolve(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="config.json: expected a JSON object of settings, found list"):
        resolve(tmp_path)


def test_bf16_mixed_precision_trains_with_gradient_clipping_and_the_fused_optimizer(tmp_path):
    """bf16-mixed (the GPU default, and CPUs with native bf16) with AdamW's fused step and gradient clipping 1.0:
    Lightning's mixed-precision plugin refuses to clip for a fused optimizer, so the module clips itself."""
    import csv

    from conftest import run_cli

    res = run_cli(["train.py", "model=bert_tiny", "trainer.precision=bf16-mixed", "trainer.max_steps=3",
                   "trainer.log_every_n_steps=1", "data.batch_size=8", f"hydra.run.dir={tmp_path / 'run'}",
                   f"paths.cache_dir={tmp_path / 'cache'}", "data.source.max_chars=200000"])
    assert res.returncode == 0, res.stderr[-3000:]
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert len(losses) == 3 and all(loss == loss and loss < 20 for loss in losses)


def test_the_module_clips_like_lightning_for_fused_optimizers():
    from bert_pl.training.module import BertModule

    torch.manual_seed(0)
    module = BertModule({"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 32})
    for p in module.parameters():
        p.grad = torch.randn_like(p) * 10
    opt = torch.optim.AdamW(module.parameters(), fused=True)
    module.configure_gradient_clipping(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in module.parameters()))
    assert float(total) == pytest.approx(1.0, rel=1e-4)


def test_a_budget_that_ends_before_the_first_validation_is_said_with_a_value(caplog):
    from helpers import compose_cfg

    from bert_pl.pretraining.module import RunSummary
    from bert_pl.training.checks import check_config, first_validation_step

    cfg = compose_cfg("train", ["trainer.max_steps=60", "trainer.val_check_interval=100"])
    with caplog.at_level("WARNING", logger="bert_pl"):
        check_config(cfg)
    assert "trainer.max_steps=60 ends before the first validation at step 100" in caplog.text
    assert "set trainer.val_check_interval=30 or lower" in caplog.text
    # a wall-clock budget (trainer.max_time) that stopped the run first: said at the end, with a value
    text = RunSummary().text(steps=42, first_validation=first_validation_step(cfg))
    assert "the run ended at step 42, before the first validation at step 100" in text
    assert "trainer.val_check_interval=21" in text
    caplog.clear()
    check_config(compose_cfg("train", ["trainer.max_steps=600"]))
    assert "before the first validation" not in caplog.text
