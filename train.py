"""Pretrain BERT (masked LM + next-sentence prediction). `python train.py` runs the offline CPU demo.

    python train.py model=bert_base accelerator=gpu data=wikipedia trainer.max_steps=1000000
    python train.py ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt     # resume
"""
import hydra
from omegaconf import DictConfig

from bert_pl.cli.entry import entry_point
from bert_pl.training import resolvers  # noqa: F401  (the configs' ${run_dir:} ... resolvers)
from bert_pl.training.jobs import pretrain


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@entry_point
def main(cfg: DictConfig):
    return pretrain(cfg)


if __name__ == "__main__":
    main()
