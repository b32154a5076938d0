"""What the entry points share: resolvers, instantiating callbacks/loggers/trainer, and one-line user errors."""
from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import pickle
import re
import sys
from pathlib import Path
from typing import List, Optional

from omegaconf import DictConfig, OmegaConf

from bert_pl.errors import UserConfigError, UserError  # noqa: F401  (UserConfigError is raised by entry points)
from bert_pl.training import hardware

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# In the repository: its root (conf/, data/, outputs/ beside bert_pl/). Installed (`pip install .`): the current
# folder, where data/ and outputs/ then go; the configs ship inside the package (bert_pl/conf -> ../conf).
_REPO = PACKAGE_DIR.parent
PROJECT_ROOT = _REPO if (_REPO / "conf").is_dir() and (_REPO / "train.py").is_file() else Path.cwd()
CONF_DIR = (_REPO / "conf") if PROJECT_ROOT == _REPO else PACKAGE_DIR / "conf"
log = logging.getLogger("bert_pl")

_claimed_run_dirs: dict = {}


def _run_of(ckpt_path) -> Optional[Path]:
    """The run folder a resume checkpoint belongs to (`<run>/checkpoints/x.ckpt`, a run folder, latest[:TASK])."""
    if not ckpt_path:
        return None
    from bert_pl.io import runs

    spec = str(ckpt_path)
    try:
        path = Path(runs.expand(spec) if spec == "latest" or spec.startswith("latest:") else spec).expanduser()
    except UserError:
        return None  # reported properly when the job reads ckpt_path
    if path.is_dir() and (path / "checkpoints").is_dir():
        return path.resolve()
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent.resolve()
    return None


_auto_resumed: dict = {}


def _auto_run(runs_dir: str, overrides) -> Optional[Path]:
    """`ckpt_path=auto`: the newest unfinished run of this task with these settings (the same overrides, apart from
    ckpt_path and hydra.*), decided once per process."""
    if runs_dir not in _auto_resumed:
        from bert_pl.io import runs

        _auto_resumed[runs_dir] = runs.newest_unfinished(runs_dir, overrides)
    return _auto_resumed[runs_dir]


def run_dir(runs_dir: str, ckpt_path=None, *, _root_=None) -> str:
    """`hydra.run.dir`: a resumed run continues in its own folder (`ckpt_path=auto`: the newest unfinished run of the
    same settings, if any); a new run gets `<runs_dir>/<start time>`, with -1, -2, ... added when runs start in the
    same second (claimed by creating it, so two processes never share)."""
    if str(ckpt_path) == "auto":  # the overrides from the composed config itself (Hydra's runtime may not be set)
        resumed = _auto_run(runs_dir, OmegaConf.select(_root_, "hydra.overrides.task", default=None) or [])
    else:
        resumed = _run_of(ckpt_path)
    if resumed is not None:
        return str(resumed)
    if runs_dir not in _claimed_run_dirs:
        import itertools

        stamp = _start_time()
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        for i in itertools.count():
            candidate = Path(runs_dir) / (stamp if i == 0 else f"{stamp}-{i}")
            try:
                candidate.mkdir()
                break
            except FileExistsError:
                continue
        _claimed_run_dirs[runs_dir] = str(candidate)
    return _claimed_run_dirs[runs_dir]


def config_subdir(ckpt_path=None) -> str:
    """`hydra.output_subdir`: a resumed run keeps the original run's .hydra/ and writes its own beside it."""
    resumed = any(_auto_resumed.values()) if str(ckpt_path) == "auto" else _run_of(ckpt_path) is not None
    return f".hydra/resumed-{_start_time()}" if resumed else ".hydra"


@functools.lru_cache(maxsize=1)
def _start_time() -> str:
    import datetime

    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


for _name, _fn in (("project_root", lambda: str(PROJECT_ROOT)), ("run_dir", run_dir),
                   ("config_subdir", config_subdir), ("gpu_precision", hardware.gpu_precision),
                   ("cpu_precision", hardware.cpu_precision)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def entry_point(fn):
    """Wrap a Hydra task function: bad input ends in one line on stderr and exit code 2, never a deep stack trace
    (BERT_PL_TRACEBACK=1 shows it). Missing files and permissions count as bad input too, and so do faults of the
    machine the user can fix: a full or read-only disk, and running out of memory (with the settings to lower)."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    user = (UserError, FileNotFoundError, PermissionError, MissingMandatoryValue)

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig):
        one_console_log()
        try:
            return fn(cfg)
        except KeyboardInterrupt:  # Ctrl-C outside training (within it Lightning stops; SaveOnPreemption says more)
            if os.environ.get("BERT_PL_TRACEBACK"):
                raise
            _remove_if_empty_run()
            print("interrupted (Ctrl-C)", file=sys.stderr)
            sys.exit(130)
        except Exception as e:  # noqa: BLE001 (only the faults named below are reported in one line)
            cause = e.__cause__ if isinstance(e, InstantiationException) else e  # Hydra building a `_target_`
            message = _one_line(cause, user, cfg)
            if message is None or os.environ.get("BERT_PL_TRACEBACK"):
                raise
            _remove_if_empty_run()
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def _one_line(e: BaseException, user, cfg: DictConfig) -> Optional[str]:
    """What entry_point prints for `e`, or None for a fault that is not the user's to fix (a bug: full traceback)."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(e, MissingMandatoryValue):
        return f"{str(e).splitlines()[0]} (pass {e.full_key}=...)"
    if isinstance(e, UserError) and isinstance(e, OSError) and e.strerror:
        return e.strerror  # not OSError's "[Errno 28] ..." prefix
    if isinstance(e, PermissionError) and e.filename:
        return (f"{e.filename}: permission denied; fix its permissions, or choose a folder this user can write "
                f"(paths.log_dir=..., hydra.run.dir=..., data.cache_dir=...)")
    if isinstance(e, user):
        return str(e)
    disk = _disk_fault(e)
    if disk is not None:
        where = f"{disk.filename}: " if disk.filename else ""
        if disk.errno in (errno.ENOSPC, errno.EDQUOT):
            return (f"{where}the disk is full ({disk.strerror}); free space or write elsewhere (paths.log_dir=..., "
                    f"hydra.run.dir=..., data.cache_dir=...), then resume the run with ckpt_path=<its run folder>")
        return (f"{where}cannot write here ({disk.strerror}); choose a writable folder (paths.log_dir=..., "
                f"hydra.run.dir=..., data.cache_dir=...)")
    if _out_of_memory(e):
        data = cfg.get("data") or {}
        batch = data.get("batch_size")
        now = f"={batch}" if batch is not None else ""
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return (f"out of memory ({first}); lower data.batch_size{now} (raise trainer.accumulate_grad_batches to keep "
                f"the same effective batch), or data.max_seq_length, or use a smaller model")
    return None


def _disk_fault(e: BaseException) -> Optional[OSError]:
    """A full or read-only disk anywhere along the exception's chain (torch's writer, for one, wraps the OSError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return e
        e = e.__cause__ or e.__context__
    return None


def _out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError ("DefaultCPUAllocator: can't allocate memory")."""
    import torch

    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text)


def _remove_if_empty_run() -> None:
    """A run refused before it wrote anything leaves no folder behind: only Hydra's record, its log, the copy of the
    tokenizer and the loggers' empty set-up files were there (the error is on the console). Checkpoints, metrics and
    results keep the folder."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    if not folder.is_dir():
        return
    setup_only = {".hydra", "tokenizer"}
    written = [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".log" and p.name != "hparams.yaml"
               and not setup_only.intersection(p.relative_to(folder).parts[:1])]
    if not written:
        shutil.rmtree(folder, ignore_errors=True)


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip")


def one_console_log() -> None:
    """The `lightning` package prints through its own console handler and then propagates to Hydra's (console + the
    job's log file), so each of its messages appeared twice: keep Hydra's only, and drop Lightning's product tips."""
    silence_known_noise()
    if not logging.getLogger().handlers:  # not under Hydra: Lightning's handler is the only one
        return
    import lightning  # noqa: F401  (its handler is added on import)

    lightning_log = logging.getLogger("lightning")
    for handler in list(lightning_log.handlers):
        if type(handler) is logging.StreamHandler:
            lightning_log.removeHandler(handler)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_NoAdverts())


class _NoFrameworkVersions(logging.Filter):
    """`datasets` logs at import which other frameworks it found ("TensorFlow version 2.x available."): every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not re.fullmatch(r"(PyTorch|TensorFlow|JAX|Polars) version \S+ available\.", str(record.msg))


def silence_known_noise() -> None:
    """The messages every run repeated that say nothing about it: Lightning's own use of a deprecated torch pytree
    API (LeafSpec), and `datasets`' list of installed frameworks. Only these; other warnings still show."""
    import warnings

    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    datasets_log = logging.getLogger("datasets")
    if not any(isinstance(f, _NoFrameworkVersions) for f in datasets_log.filters):
        datasets_log.addFilter(_NoFrameworkVersions())


def instantiate_group(group) -> List:
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def build_trainer(cfg: DictConfig):
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor

    from bert_pl.training.preemption import SaveOnPreemption

    if cfg.trainer.get("accelerator") in ("gpu", "cuda"):
        import torch

        torch.set_float32_matmul_precision("high")  # TF32 matmuls for fp32 runs (mixed precision is unaffected)
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks")) + [SaveOnPreemption()]  # always: SIGTERM never loses steps
    if not loggers:  # logger=[] or null: LearningRateMonitor would refuse to start, and has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    from bert_pl.training.progress import suit_the_console

    suit_the_console(trainer)  # plain progress lines when the output goes to a file
    return trainer


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


def check_seq_length(max_seq_length: int, model: dict) -> None:
    if max_seq_length > model["max_position_embeddings"]:
        raise UserConfigError(
            f"data.max_seq_length={max_seq_length} exceeds the model's max_position_embeddings="
            f"{model['max_position_embeddings']}; lower data.max_seq_length (or raise model.max_position_embeddings "
            f"when training from scratch)")


def pin_ddp_children(output_dir: str) -> None:
    """Lightning starts DDP ranks > 0 by re-running sys.argv with `hydra.run.dir=<HydraConfig run.dir>`. Under
    multirun that would start a whole sweep per rank, in the wrong folder. Give the children this job's own
    overrides (no -m, no comma sweeps) and this job's output folder instead."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    sys.argv = [sys.argv[0], *hc.overrides.task]
    OmegaConf.set_readonly(hc, False)
    hc.run.dir = output_dir
    OmegaConf.set_readonly(hc, True)


LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def distributed_job():
    """One job's distributed run. Afterwards: tear down its process group, and restore the variables Lightning's
    launcher set in this process (LOCAL_RANK, WORLD_SIZE, ...): left behind, they would tell the next job of a
    multirun that its processes are started externally, and it would wait forever for ranks nobody starts."""
    import torch.distributed as dist

    saved = {k: os.environ.get(k) for k in LAUNCHER_ENV}
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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


def checkpoint_to_resume(cfg: DictConfig, head: str, labels=None) -> Optional[str]:
    """`ckpt_path=` as a checkpoint file, or None for a fresh start. `auto`: this run folder's last.ckpt when Hydra
    chose an unfinished run of the same settings (see `run_dir`), else a new run (said in the log)."""
    spec = cfg.get("ckpt_path")
    if not spec:
        return None
    if str(spec) == "auto":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            log.info("ckpt_path=auto: no unfinished run with these settings; starting a new one")
            return None
        log.info("ckpt_path=auto: resuming the unfinished run %s", last.parent.parent)
        spec = str(last)
    return resume_checkpoint(spec, head, labels)


def resume_checkpoint(spec, head: str, labels=None, key: str = "ckpt_path") -> str:
    """`ckpt_path=`: a run folder (its checkpoints/last.ckpt), `latest[:TASK]` or a .ckpt that Lightning wrote while
    training a `head` model (with `labels`); anything else is a one-line error naming what it is."""
    import torch

    from bert_pl.io import runs

    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        found = [p for p in (path / "checkpoints" / "last.ckpt", path / "last.ckpt") if p.is_file()]
        if not found:
            raise UserConfigError(f"{key}={spec}: the folder has no checkpoints/last.ckpt to resume from")
        path = found[0]
    elif spec == "latest" or spec.startswith("latest:"):
        path = runs.find_latest(spec.partition(":")[2] or None) / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserConfigError(f"{key}={spec}: no such file or folder")
    try:  # weights_only: tensors and plain containers, never code (a pickle can run anything when loaded)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise UserConfigError(f"{key}={spec}: refused: the file holds pickled Python objects that a bert-pl "
                              f"checkpoint never contains, and loading them could run code (nothing was run); "
                              f"resume from a checkpoint bert-pl wrote") from None
    except Exception as e:  # noqa: BLE001 (any unreadable file is the same user error)
        raise UserConfigError(f"{key}={spec}: not a readable checkpoint ({type(e).__name__}); pass a run's "
                              f"checkpoints/last.ckpt") from None
    if not isinstance(state, dict) or "optimizer_states" not in state or "loops" not in state:
        raise UserConfigError(f"{key}={spec}: not a training checkpoint written by bert-pl (no optimizer and loop "
                              f"state); to start from these weights pass pretrained= instead")
    info = state.get("bert_pl") or {}
    if info.get("head", "pretraining") != head:
        raise UserConfigError(f"{key}={spec} was written while training a {info.get('head')} model; this run trains a "
                              f"{head} model: resume it with the command that made it, or pass pretrained= to start "
                              f"from its weights")
    if labels is not None and info.get("labels") is not None and list(info["labels"]) != list(labels):
        raise UserConfigError(f"{key}={spec} was trained with labels {list(info['labels'])}, this task has "
                              f"{list(labels)}: resume it with the task that made it")
    return str(path)


def key_value_config(defaults_file, argv) -> DictConfig:
    """`key=value` arguments over a YAML file of defaults (for commands that compose nothing, e.g. predict.py):
    unknown keys, missing required values and values of the wrong type are one-line errors. A setting's type is its
    default's, or the one declared under `_types` in the defaults file (for settings whose default is null):
    text (taken exactly as typed), int, float, bool or list (YAML; a single value is a one-item list)."""
    import yaml

    def fail(message: str):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)

    defaults = OmegaConf.load(defaults_file)
    declared = OmegaConf.to_container(defaults.pop("_types")) if "_types" in defaults else {}
    bad = [a for a in argv if "=" not in a]
    if bad:
        fail(f"{bad[0]!r}: arguments are key=value; settings: {', '.join(defaults.keys())}")
    keys = list(defaults.keys())
    unknown = [a.split("=", 1)[0] for a in argv if a.split("=", 1)[0] not in keys]
    if unknown:
        fail(f"unknown setting {unknown[0]!r}; settings: {', '.join(keys)}")

    def kind_of(key: str) -> str:
        if key in declared:
            return declared[key]
        value = None if OmegaConf.is_missing(defaults, key) else defaults[key]
        if value is None or isinstance(value, str):
            return "text"  # text="Verdict: yes", tabs, [MASK] stay as typed
        if isinstance(value, bool):
            return "bool"
        return {int: "int", float: "float"}.get(type(value), "list")

    given = {}
    for a in argv:
        key, text = a.split("=", 1)
        kind = kind_of(key)
        if kind == "text":
            given[key] = text
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            fail(f"{key}={text!r}: not a valid {kind}")
        nullable = not OmegaConf.is_missing(defaults, key) and defaults[key] is None
        if value is None and nullable:  # key=null (or key=) restores a null default
            given[key] = None
            continue
        if kind == "list" and not isinstance(value, list):
            value = [value]  # text_columns=text means [text]
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "bool": isinstance(value, bool),
              "list": isinstance(value, list)}[kind]
        if not ok:
            example = {"int": "a whole number, e.g. 64", "float": "a number, e.g. 0.5", "bool": "true or false",
                       "list": "a list, e.g. [a,b]"}[kind]
            fail(f"{key}={text!r}: expected {example}" + (" (or null)" if nullable else ""))
        given[key] = float(value) if kind == "float" else value
    cfg = OmegaConf.merge(defaults, OmegaConf.create(given))
    missing = [k for k in cfg.keys() if OmegaConf.is_missing(cfg, k)]
    if missing:
        fail(f"pass {missing[0]}=... ({defaults_file})")
    return cfg
