"""bert-pl: BERT pretraining and fine-tuning with PyTorch Lightning + Hydra.

    import bert_pl
    model = bert_pl.load("outputs/finetune/mrpc/runs/latest")   # bert_pl.inference.model.load
    model.predict([("The cat sat.", "A cat was sitting.")])
    bert_pl.finetune(task="mrpc", pretrained=PATH, overrides=["trainer.max_epochs=1"])   # bert_pl.training.api
    bert_pl.pretrain(overrides=["trainer.max_steps=100"])

Nothing heavy is imported until one of these is used.
"""

__all__ = ["load", "finetune", "pretrain"]


def __getattr__(name):
    if name == "load":
        from bert_pl.inference.model import load

        return load
    if name in ("finetune", "pretrain"):
        from bert_pl.training import api

        return getattr(api, name)
    raise AttributeError(f"module 'bert_pl' has no attribute {name!r}")
