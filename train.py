"""Pretrain BERT (masked LM + next-sentence prediction). `python train.py` runs the offline CPU demo.

    python train.py model=bert_base accelerator=gpu data=wikipedia trainer.max_steps=1000000
    python train.py ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt     # resume
"""
import logging

import hydra
from omegaconf import DictConfig

from bert_pl.training import runner

log = logging.getLogger("bert_pl")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@runner.entry_point
def main(cfg: DictConfig):
    import lightning as L
    from hydra.utils import instantiate

    from bert_pl.io import checkpoints
    from bert_pl.io import tokenization

    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    resume = checkpoints.resolve(cfg.ckpt_path) if cfg.ckpt_path else None
    start = resume or (checkpoints.resolve(cfg.pretrained) if cfg.pretrained else None)
    tokenizer = datamodule.load_tokenizer(from_checkpoint=start.tokenizer_json if start else None)
    model = runner.model_dict(cfg.model, tokenizer.get_vocab_size(), cfg.ckpt_path or cfg.pretrained)
    runner.check_seq_length(cfg.data.max_seq_length, model)

    module = instantiate(cfg.module, _convert_="all", model=model, optimizer=instantiate(cfg.optimizer),
                         pretrained=None if resume else cfg.pretrained)
    module.tokenizer_json = tokenizer.to_str()
    runner.pin_ddp_children(cfg.paths.output_dir)
    trainer = runner.build_trainer(cfg)
    if trainer.is_global_zero:
        tokenization.save(tokenizer, f"{cfg.paths.output_dir}/tokenizer")
    with runner.distributed_job():
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    ckpt_cb = trainer.checkpoint_callback
    if trainer.is_global_zero and ckpt_cb is not None:
        last = ckpt_cb.last_model_path or ckpt_cb.best_model_path
        metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
        log.info("metrics at the end: %s", metrics)
        print(f"checkpoint: {last}")
    return trainer.callback_metrics.get("val/mlm_acc")


if __name__ == "__main__":
    main()
