"""The composed config checked before anything is built (one line each, naming the key and the fix), and what it
means: the architecture to build (`model_dict`) and the weights fine-tuning starts from (`weights_to_start_from`)."""
from __future__ import annotations

import logging
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from bert_pl.errors import UserConfigError
from bert_pl.io.project import CONF_DIR

log = logging.getLogger("bert_pl")


ARCHITECTURE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def model_dict(cfg_model, vocab_size: int, pretrained=None) -> dict:
    """The architecture: the checkpoint's when starting from one (run-time keys from the preset), else the preset's
    with the tokenizer's vocab size."""
    from bert_pl.io.checkpoints import config_for

    preset = OmegaConf.to_container(cfg_model, resolve=True) if cfg_model is not None else {}
    preset.pop("_target_", None)
    if pretrained:
        arch = config_for(pretrained, preset).to_dict()
        differ = [k for k in ARCHITECTURE_KEYS if preset.get(k) is not None and preset[k] != arch[k]]
        if differ:
            have = ", ".join(f"{k}={arch[k]}" for k in differ)
            want = ", ".join(f"{k}={preset[k]}" for k in differ)
            raise UserConfigError(f"{pretrained} is a model with {have}, but the composed model preset has {want}; "
                                  f"pass the checkpoint's own size (model=...) or a checkpoint of this size")
        if vocab_size > arch["vocab_size"]:  # token ids past its embeddings: an IndexError in the first step
            raise UserConfigError(f"the tokenizer has {vocab_size} tokens but {pretrained} has embeddings for "
                                  f"{arch['vocab_size']}; leave data.tokenizer.path unset to use the checkpoint's own "
                                  f"vocab, or pass a vocab of at most {arch['vocab_size']} tokens")
        return arch
    if preset.get("vocab_size") in (None, 0):
        preset["vocab_size"] = vocab_size
    elif preset["vocab_size"] < vocab_size:
        raise UserConfigError(f"model.vocab_size={preset['vocab_size']} is smaller than the tokenizer's "
                              f"{vocab_size} tokens; leave model.vocab_size=null to take the tokenizer's size")
    return preset


def weights_to_start_from(cfg: DictConfig) -> str:
    """Fine-tuning's starting weights: `model_path` with train=false, else `pretrained`, else the newest
    pretraining run (said in the log), else a one-line error saying what to pass."""
    from bert_pl.io import runs

    if not cfg.get("train", True):
        if not cfg.get("model_path"):
            raise UserConfigError("train=false evaluates a fine-tuned model: pass model_path=RUN_FOLDER, a .ckpt or "
                                  "latest:TASK")
        return runs.expand(cfg.model_path)
    if cfg.get("model_path"):
        raise UserConfigError("model_path= is for train=false (evaluate a fine-tuned model); to train from a model, "
                              "pass pretrained=PATH")
    if cfg.pretrained:
        return runs.expand(cfg.pretrained)
    try:
        run = runs.find_latest("train")
    except runs.RunNotFoundError:
        raise UserConfigError(
            "no pretrained= given and no pretraining run found (outputs/train/runs/latest): pass pretrained= a "
            "bert-pl run folder or .ckpt, a Hugging Face or Google folder, or a hub id such as "
            "google-bert/bert-base-uncased when online") from None
    path = runs.expand(str(run))
    log.info("no pretrained= given: starting from the newest pretraining run, %s", path)
    return path


def check_fine_tuned_for(ckpt, task, task_name: str) -> None:
    """train=false: the model must have been fine-tuned for this task (same head, same labels)."""
    if ckpt.head != task.head:
        raise UserConfigError(f"{ckpt.source} holds a {ckpt.head} model, task={task_name} needs a {task.head} head; "
                              f"pass model_path= a model fine-tuned for {task_name}")
    have, want = ckpt.info.get("labels"), task.labels
    if want is not None and have is not None and list(have) != list(want):
        raise UserConfigError(f"{ckpt.source} was fine-tuned with labels {list(have)}, task={task_name} has "
                              f"{list(want)}; pass model_path= a model fine-tuned for {task_name}")


def check_config(cfg: DictConfig) -> None:
    """Settings checked where they are composed, before anything is built: a known task, positive rates and sizes,
    an accelerator this machine has. One line each, naming the key and the fix."""
    task = cfg.get("task")
    if task is not None and str(task.get("name")).endswith("_base"):
        names = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml") if not p.stem.endswith("_base"))
        raise UserConfigError(f"task={task.name} is what several tasks share, not a task: pass task= one of "
                              f"{', '.join(names)}")
    opt = cfg.get("optimizer") or {}
    checks = [("optimizer.lr", opt.get("lr"), lambda v: v > 0, "must be > 0"),
              ("optimizer.weight_decay", opt.get("weight_decay"), lambda v: v >= 0, "must be >= 0"),
              ("optimizer.eps", opt.get("eps"), lambda v: v > 0, "must be > 0"),
              ("trainer.gradient_clip_val", cfg.trainer.get("gradient_clip_val"), lambda v: v > 0,
               "must be > 0 (or null for no clipping)"),
              ("trainer.accumulate_grad_batches", cfg.trainer.get("accumulate_grad_batches"), lambda v: v >= 1,
               "must be at least 1")]
    sched = (cfg.get("module") or {}).get("scheduler") or {}
    checks += [("module.scheduler.warmup_ratio", sched.get("warmup_ratio"), lambda v: 0 <= v < 1, "must be in [0, 1)"),
               ("module.scheduler.warmup_steps", sched.get("warmup_steps"), lambda v: v >= 0, "must be >= 0")]
    for key, value, ok, rule in checks:
        if value is not None and not ok(value):
            raise UserConfigError(f"{key}={value}: {rule}")
    betas = opt.get("betas")
    if betas is not None and not all(0 <= b < 1 for b in betas):
        raise UserConfigError(f"optimizer.betas={list(betas)}: each must be in [0, 1)")
    accelerator = cfg.trainer.get("accelerator")
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserConfigError(f"accelerator=gpu: this machine has no CUDA GPU that torch {torch.__version__} can "
                                  f"use; run with accelerator=cpu (or install a CUDA build of torch)")
    if accelerator == "tpu":
        import importlib.util

        if importlib.util.find_spec("torch_xla") is None:
            raise UserConfigError("accelerator=tpu needs torch-xla, which is not installed here: use the TPU "
                                  "environment of the README (its own venv: pip install -r requirements-tpu.txt), or "
                                  "accelerator=cpu")
    training = cfg.get("train", True)  # finetune.py train=false evaluates only
    if not training and cfg.get("ckpt_path"):
        raise UserConfigError("ckpt_path= resumes training; with train=false pass model_path= only")
    if training:  # a run that takes no training step is refused: it would write an untrained model's results
        hint = "" if task is None else \
            "; to evaluate a fine-tuned model without training pass train=false model_path=..."
        for key in ("max_steps", "max_epochs", "limit_train_batches"):
            value = cfg.trainer.get(key)
            if value is not None and value == 0:
                raise UserConfigError(f"trainer.{key}=0 trains nothing{hint}")
            if value is not None and key != "limit_train_batches" and value < -1:
                raise UserConfigError(f"trainer.{key}={value}: use a positive number (or -1 for no limit)")
        first_eval = first_validation_step(cfg)
        max_steps = cfg.trainer.get("max_steps") or -1
        if first_eval and 0 < max_steps < first_eval:
            accumulate = int(cfg.trainer.get("accumulate_grad_batches") or 1)  # the interval counts batches
            log.warning("trainer.max_steps=%d ends before the first validation at step %d (trainer.val_check_interval):"
                        " the run will report no validation accuracy; set trainer.val_check_interval=%d or lower",
                        max_steps, first_eval, max(1, max_steps // 2) * accumulate)


def first_validation_step(cfg: DictConfig) -> Optional[int]:
    """The optimizer step of a pretraining run's first validation (an integer val_check_interval, which counts
    batches, and held-out data), or None."""
    interval = cfg.trainer.get("val_check_interval")
    data = cfg.get("data") or {}
    if cfg.get("task") is not None or not isinstance(interval, int) or not data.get("val_fraction"):
        return None
    return max(1, interval // int(cfg.trainer.get("accumulate_grad_batches") or 1))
