"""The two jobs behind the entry points, as functions of a composed config: `python train.py` / `finetune.py` call
them under Hydra, and the Python API (`bert_pl.pretrain`, `bert_pl.finetune`) composes the same configs and calls
them without a Hydra runtime. Lightning is imported inside the jobs: imported before Hydra sets up logging, it would
add a console handler of its own (every message twice)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from bert_pl.errors import UserConfigError
from bert_pl.training import checks, ddp
from bert_pl.training.resume import checkpoint_to_resume
from bert_pl.training.trainer import build_trainer

log = logging.getLogger("bert_pl")


def pretrain(cfg: DictConfig):
    """What `python train.py` runs: pretrain (MLM + NSP) as the composed config says; returns the final
    validation MLM accuracy."""
    import lightning as L
    from hydra.utils import instantiate

    from bert_pl.io import checkpoints
    from bert_pl.io.atomic import atomic_write_text
    from bert_pl.io.runs import mark_latest
    from bert_pl.model.bert import BertConfig
    from bert_pl.pretraining.module import RunSummary
    from bert_pl.training.checkpointing import last_checkpoint_callback
    from bert_pl.io import tokenization

    L.seed_everything(cfg.seed, workers=True)
    checks.check_config(cfg)
    datamodule = instantiate(cfg.data)
    ckpt_path = checkpoint_to_resume(cfg, "pretraining")
    resume = checkpoints.resolve(ckpt_path) if ckpt_path else None
    start = resume or (checkpoints.resolve(cfg.pretrained) if cfg.pretrained else None)
    tokenizer = datamodule.load_tokenizer(from_checkpoint=start.tokenizer_json if start else None)
    model = checks.model_dict(cfg.model, tokenizer.get_vocab_size(), ckpt_path or cfg.pretrained)
    BertConfig.from_dict(model).check_max_seq_length(cfg.data.max_seq_length, "data.max_seq_length")

    module = instantiate(cfg.module, _convert_="all", model=model, optimizer=instantiate(cfg.optimizer),
                         pretrained=None if resume else cfg.pretrained)
    module.tokenizer_json = tokenizer.to_str()
    ddp.pin_ddp_children(cfg.paths.output_dir)
    trainer = build_trainer(cfg)
    from bert_pl.training import monitor

    monitor.log_config(trainer, cfg)  # each job its own run in every logger, with its config
    summary = RunSummary()
    trainer.callbacks.append(summary)
    if trainer.is_global_zero:
        tokenization.save(tokenizer, f"{cfg.paths.output_dir}/tokenizer")
    with ddp.distributed_job():
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    ckpt_cb = last_checkpoint_callback(trainer)
    if trainer.is_global_zero:
        metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
        log.info("metrics at the end: %s", metrics)
        print(summary.text(trainer.global_step, checks.first_validation_step(cfg), trainer.accumulate_grad_batches))
        last = ckpt_cb.last_model_path if ckpt_cb is not None else ""
        if last:  # a finished run: ckpt_path=auto starts anew, latest points here
            atomic_write_text(Path(cfg.paths.output_dir) / "results.json", json.dumps(
                {"task": cfg.task_name, "global_step": trainer.global_step, "metrics": metrics,
                 "validations": summary.validations, "checkpoint": last}, indent=2))
            mark_latest(cfg.paths.output_dir)
            from bert_pl.training.preemption import python_command

            print(f"checkpoint: {last}\nfine-tune it on your CSV: {python_command()} finetune.py "
                  f"task=text_classification pretrained={cfg.paths.output_dir} data.train_file=train.csv "
                  f"data.validation_file=dev.csv\n  (or GLUE: task=mrpc data_dir=GLUE_DIR; python finetune.py --help)")
        else:
            print("no checkpoint was written (no training step ran, or checkpointing is off)")
    monitor.end_job(trainer, cfg)  # summary, curves.png, W&B run closed
    return trainer.callback_metrics.get("val/mlm_acc")



def finetune(cfg: DictConfig, overrides=()):
    """What `python finetune.py` runs: fine-tune (or with train=false evaluate) on the composed task; writes
    predictions and results.json; returns the best dev value."""
    import lightning as L
    from hydra.utils import instantiate

    from bert_pl.io import checkpoints, tokenization
    from bert_pl.io.runs import mark_latest
    from bert_pl.model.bert import BertConfig
    from bert_pl.tasks.results import finish

    L.seed_everything(cfg.seed, workers=True)
    checks.check_config(cfg)
    pretrained = checks.weights_to_start_from(cfg)
    ckpt = checkpoints.resolve(pretrained)
    if not ckpt.tokenizer_json:
        raise UserConfigError(f"{ckpt.source} has no vocab.txt/tokenizer.json; put the vocab next to the weights")
    task = instantiate(cfg.data)  # a bert_pl.tasks.base.Task
    task.set_tokenizer(tokenization.from_json_string(ckpt.tokenizer_json))
    model = checks.model_dict(cfg.model, 0, pretrained)
    BertConfig.from_dict(model).check_max_seq_length(cfg.data.max_seq_length, "data.max_seq_length")
    task.prepare()
    if not cfg.train:
        checks.check_fine_tuned_for(ckpt, task, cfg.task.name)
    ckpt_path = checkpoint_to_resume(cfg, task.head, task.labels)
    module = instantiate(cfg.module, _convert_="all", model=model, head=task.head, head_kwargs=task.head_kwargs(),
                         labels=task.labels, main_metric=task.main_metric,
                         optimizer=instantiate(cfg.optimizer), pretrained=pretrained)
    ddp.pin_ddp_children(cfg.paths.output_dir)
    trainer = build_trainer(cfg)
    from bert_pl.training import monitor

    monitor.log_config(trainer, cfg)  # each job its own run in every logger, with its config
    start = time.time()
    with ddp.distributed_job():
        if cfg.train:
            trainer.fit(module, datamodule=task, ckpt_path=ckpt_path)
        if not trainer.is_global_zero:
            return None
        results = finish(trainer, module, task, cfg, Path(cfg.paths.output_dir), time.time() - start,
                         overrides, pretrained)
    monitor.end_job(trainer, cfg, results)  # summary, curves.png, W&B run closed
    if results["degenerate"]:
        print(f"WARNING: the model looks untrained ({results['degenerate_reason']}); results.json says "
              f"\"degenerate\": true")
    if cfg.train:  # an evaluate-only run has no checkpoint: latest keeps pointing at the model
        mark_latest(cfg.paths.output_dir)
        print(f"best dev {results['best']['metric']}: {results['best']['value']} (epoch {results['best']['epoch']}); "
              f"results: {cfg.paths.output_dir}/results.json")
    else:
        print(f"dev: {json.dumps(results['dev'])}; results: {cfg.paths.output_dir}/results.json")
    return results["best"]["value"]

