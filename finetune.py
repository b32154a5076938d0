"""Fine-tune a pretrained BERT on a task: your own data, a GLUE task or SQuAD.

    python finetune.py task=mrpc pretrained=PATH data_dir=glue_data
    python finetune.py task=text_classification pretrained=PATH data.train_file=train.csv data.validation_file=dev.csv
    python finetune.py -m hparams_search=glue_grid task=rte pretrained=PATH
    python finetune.py task=mrpc data_dir=glue_data                  # from the newest pretraining run (train.py)
    python finetune.py task=mrpc model_path=latest:mrpc train=false  # evaluate + predict with a fine-tuned model
"""
import hydra
from omegaconf import DictConfig

from bert_pl.cli.entry import entry_point
from bert_pl.training import resolvers  # noqa: F401  (the configs' ${run_dir:} ... resolvers)
from bert_pl.training.jobs import finetune


@hydra.main(version_base="1.3", config_path="conf", config_name="finetune")
@entry_point
def main(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig

    return finetune(cfg, HydraConfig.get().overrides.task)


if __name__ == "__main__":
    main()
