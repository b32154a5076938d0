"""Console scripts of an installed bert-pl (`pip install .`): `bert-pl-train`, `bert-pl-finetune`,
`bert-pl-predict`, `bert-pl-serve`, `bert-pl-export` run what `train.py`, `finetune.py`, `predict.py`, `serve.py` and
`python -m bert_pl.export` run, with the configs shipped inside the package (`bert_pl/conf`, the repository's `conf/`)."""
from __future__ import annotations

from bert_pl.cli.entry import entry_point
from bert_pl.io.project import CONF_DIR


def _hydra_main(config_name: str, job):
    import hydra

    from bert_pl.training import resolvers  # noqa: F401  (the configs' ${run_dir:} ... resolvers)

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    @entry_point
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
    from bert_pl.cli.predict import main

    main()


def serve():
    from bert_pl.cli.serve import main

    main()


def export():
    from bert_pl.export import main

    main()
