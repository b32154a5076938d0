"""Console scripts of an installed bert-pl (`pip install .`): `bert-pl-train`, `bert-pl-finetune`,
`bert-pl-predict`, `bert-pl-export` run what `train.py`, `finetune.py`, `predict.py` and `python -m bert_pl.export`
run, with the configs shipped inside the package (`bert_pl/conf`, the repository's `conf/`)."""
from __future__ import annotations

import sys

from bert_pl.training import runner


def _hydra_main(config_name: str, job):
    import hydra

    @hydra.main(version_base="1.3", config_path=str(runner.CONF_DIR), config_name=config_name)
    @runner.entry_point
    def main(cfg):
        return job(cfg)

    return main()


def train():
    from bert_pl.training.jobs import pretrain

    _hydra_main("train", pretrain)


def finetune():
    from bert_pl.training.jobs import finetune as job

    def run(cfg):
        from hydra.core.hydra_config import HydraConfig

        return job(cfg, HydraConfig.get().overrides.task)

    _hydra_main("finetune", run)


def predict():
    from bert_pl.inference.model import run_predict

    runner.entry_point(run_predict)(runner.key_value_config(runner.CONF_DIR / "predict.yaml", sys.argv[1:]))


def export():
    from bert_pl.export import main

    main()
