"""After fitting: reload the best dev checkpoint, write dev and test predictions (through the task) and results.json."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from bert_pl.io.atomic import atomic_write_text

log = logging.getLogger("bert_pl")


def predict_split(trainer, module, datamodule, split: str) -> dict:
    trainer.predict(module, dataloaders=datamodule.predict_loader(split), return_predictions=False)
    return module.gathered(("predict", 0))


def _single_process(trainer):
    """Predictions are written by rank 0 alone: after a multi-process fit it predicts on a one-device trainer of
    its own (the other ranks have returned; the fit's strategy would wait for them)."""
    if trainer.world_size == 1:
        return trainer
    import lightning as L

    return L.Trainer(accelerator=trainer.accelerator, devices=1, precision=trainer.precision_plugin.precision,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def finish(trainer, module, datamodule, cfg, output_dir: Path, train_seconds: float, overrides=(),
           pretrained=None) -> dict:
    """`pretrained`: the weights the run started from, as resolved (default: cfg.pretrained)."""
    ckpt_cb = trainer.checkpoint_callback
    best_path = ckpt_cb.best_model_path if ckpt_cb is not None else ""
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    history = module.history
    best = max(history, key=lambda h: h["main"]) if history else None
    trainer = _single_process(trainer)
    files, dev, baseline, degenerate = [], {}, {}, []
    t0 = time.time()
    for split in datamodule.eval_splits:
        outputs = predict_split(trainer, module, datamodule, split)
        dev[split] = datamodule.evaluate(split, outputs)
        check = datamodule.check_learned(split, outputs)
        if check.get("baseline"):
            baseline[split] = check["baseline"]
        if check.get("degenerate"):
            degenerate.append(f"{split}: {check['degenerate']}")
        files.append(str(datamodule.write_predictions(split, outputs, output_dir, submission=False)))
    for split in datamodule.test_splits():  # none with data.predict_test=false
        outputs = predict_split(trainer, module, datamodule, split)
        files.append(str(datamodule.write_predictions(split, outputs, output_dir, submission=True)))
        if cfg.data.get("limit_eval_examples"):
            log.warning("%s: predicted its first %d rows only (data.limit_eval_examples): not a complete submission",
                        split, cfg.data.limit_eval_examples)
    results = {
        "task": cfg.task.name,
        "pretrained": str(pretrained or cfg.pretrained),
        "trained": bool(cfg.get("train", True)),
        "overrides": list(overrides),
        "seed": cfg.seed,
        "lr": cfg.optimizer.lr,
        "batch_size": cfg.data.batch_size,
        "max_epochs": cfg.trainer.max_epochs,
        **datamodule.results_info(),
        "dataset": datamodule.dataset_info(),
        "history": history,
        "best": {"metric": datamodule.main_metric, "value": best["main"] if best else None,
                 "epoch": best["epoch"] if best else None, "checkpoint": best_path},
        "dev": dev,
        "baseline": baseline,
        "degenerate": bool(degenerate),
        "degenerate_reason": "; ".join(degenerate) or None,
        "files": files,
        "train_seconds": round(train_seconds, 1),
        "predict_seconds": round(time.time() - t0, 1),
    }
    atomic_write_text(output_dir / "results.json", json.dumps(results, indent=2))
    log.info("dev (best epoch %s): %s", results["best"]["epoch"], json.dumps(dev))
    if degenerate:
        log.warning("THE MODEL LOOKS UNTRAINED: %s. Its scores are a constant predictor's; try another learning "
                    "rate, more epochs or another checkpoint (results.json: \"degenerate\": true)",
                    results["degenerate_reason"])
    log.info("wrote %s", ", ".join(files + [str(output_dir / "results.json")]))
    return results
