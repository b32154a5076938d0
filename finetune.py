"""Fine-tune a pretrained BERT on a task: your own data, a GLUE task or SQuAD.

    python finetune.py task=mrpc pretrained=PATH data_dir=glue_data
    python finetune.py task=text_classification pretrained=PATH data.train_file=train.csv data.validation_file=dev.csv
    python finetune.py -m hparams_search=glue_grid task=rte pretrained=PATH
"""
import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from bert_pl.training import runner

log = logging.getLogger("bert_pl")


@hydra.main(version_base="1.3", config_path="conf", config_name="finetune")
@runner.entry_point
def main(cfg: DictConfig):
    import lightning as L
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from bert_pl.io import checkpoints
    from bert_pl.io import tokenization
    from bert_pl.tasks.results import finish

    L.seed_everything(cfg.seed, workers=True)
    ckpt = checkpoints.resolve(cfg.pretrained)
    if not ckpt.tokenizer_json:
        raise runner.UserConfigError(f"{ckpt.source} has no vocab.txt/tokenizer.json; put the vocab next to the "
                                     f"weights")
    task = instantiate(cfg.data)  # a bert_pl.tasks.base.Task
    task.set_tokenizer(tokenization.from_json_string(ckpt.tokenizer_json))
    model = runner.model_dict(cfg.model, 0, cfg.pretrained)
    runner.check_seq_length(cfg.data.max_seq_length, model)
    task.prepare()
    module = instantiate(cfg.module, _convert_="all", model=model, head=task.head, head_kwargs=task.head_kwargs(),
                         labels=task.labels, main_metric=task.main_metric,
                         optimizer=instantiate(cfg.optimizer), pretrained=cfg.pretrained)
    runner.pin_ddp_children(cfg.paths.output_dir)
    trainer = runner.build_trainer(cfg)
    start = time.time()
    with runner.distributed_job():
        trainer.fit(module, datamodule=task)
        if not trainer.is_global_zero:
            return None
        results = finish(trainer, module, task, cfg, Path(cfg.paths.output_dir), time.time() - start,
                         HydraConfig.get().overrides.task)
    print(f"best dev {results['best']['metric']}: {results['best']['value']} (epoch {results['best']['epoch']}); "
          f"results: {cfg.paths.output_dir}/results.json")
    return results["best"]["value"]


if __name__ == "__main__":
    main()
