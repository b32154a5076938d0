"""bert-pl: BERT pretraining and fine-tuning with PyTorch Lightning + Hydra.

The Python API: the same configs and jobs as train.py / finetune.py, and the trained models ready to use.

    import bert_pl
    base = bert_pl.pretrain(overrides=["trainer.max_steps=100"])           # a Run: run_dir, metrics
    run = bert_pl.finetune("mrpc", pretrained=base.run_dir, overrides=["trainer.max_epochs=1"])
    model = bert_pl.load(run.run_dir)                                      # or a .ckpt, latest:TASK, HF/ONNX folder
    model(("The cat sat.", "A cat was sitting."))                          # one pair -> one result
    model.predict([("The cat sat.", "A cat was sitting."), ("Hi.", "Hello.")])   # a list -> a list
    bert_pl.load("latest:train").fill_mask("Paris is the [MASK] of France.")
    model.embed(["a sentence", "another"])                                 # sentence vectors

Nothing heavy (torch, Lightning) is imported until one of these is called.
"""

__all__ = ["load", "finetune", "pretrain"]


def load(path, device="cpu", batch_size: int = 64, max_seq_length=None):
    """A trained model ready to predict (`bert_pl.inference.model.Model`) from any checkpoint: a run folder or .ckpt,
    `latest` / `latest:TASK`, a Hugging Face, sentence-transformers or Google folder, a hub id (online), or an ONNX
    export. `device`: cpu, cuda, cuda:N; `batch_size`: inputs per forward pass; `max_seq_length`: null = the run's.

    The model is callable (`model(inputs)` runs its head's default use: predict, or fill_mask for a pretraining
    checkpoint); `model.predict`, `model.fill_mask`, `model.embed`: a str, a (text_a, text_b) tuple or one
    QA/multiple-choice dict is one input and gets one result, a list gets a list."""
    from bert_pl.inference.model import load as load_model

    return load_model(path, device, batch_size, max_seq_length)


def pretrain(overrides=(), output_dir=None):
    """Run `python train.py OVERRIDES...` in this process (the same configs, so every override works the same);
    returns a `Run` (run_dir, metrics, results)."""
    from bert_pl.training.api import pretrain as run

    return run(overrides, output_dir)


def finetune(task: str, pretrained=None, overrides=(), output_dir=None):
    """Run `python finetune.py task=TASK pretrained=PRETRAINED OVERRIDES...` in this process; returns a `Run`
    (run_dir, metrics (dev), best (metric, value, epoch, checkpoint), results; `run.load()` gives the model)."""
    from bert_pl.training.api import finetune as run

    return run(task, pretrained, overrides, output_dir)
