from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

import bert_pl.training.resolvers  # noqa: F401  (registers the configs' resolvers: project_root, run_dir, ...)
from bert_pl.model.bert import BertConfig
from helpers import CONF, compose_cfg

MODELS = sorted(p.stem for p in Path(CONF, "model").glob("*.yaml"))
ACCELERATORS = ["cpu", "gpu", "tpu"]
TASKS = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "squad_v1", "squad_v2"]


def test_presets_have_googles_sizes():
    expected = {"bert_tiny": (128, 2, 2, 512), "bert_mini": (256, 4, 4, 1024), "bert_small": (512, 4, 8, 2048),
                "bert_medium": (512, 8, 8, 2048), "bert_base": (768, 12, 12, 3072),
                "bert_large": (1024, 24, 16, 4096)}
    assert set(MODELS) == set(expected)
    for name, sizes in expected.items():
        m = compose_cfg("train", [f"model={name}"]).model
        assert (m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.intermediate_size) == sizes


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("accelerator", ACCELERATORS)
def test_train_composes(model, accelerator):
    cfg = compose_cfg("train", [f"model={model}", f"accelerator={accelerator}"])
    OmegaConf.resolve(cfg)
    d = OmegaConf.to_container(cfg.model)
    d["vocab_size"] = 30522
    BertConfig.from_dict(d)
    assert cfg.optimizer.lr == cfg.model.pretrain_lr
    if accelerator == "tpu":
        assert cfg.trainer.accelerator == "tpu" and cfg.trainer.precision == "bf16-true"
        assert cfg.data.static_shapes is True and cfg.module.on_nonfinite == "ignore"
    if accelerator == "gpu":  # bf16 where the card has it (Ampere+), else fp16 with a scaler; no card: the latter
        import torch

        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        assert cfg.trainer.precision == ("bf16-mixed" if bf16 else "16-mixed")
        assert cfg.model.attention == "auto" and cfg.model.unpad is True


def test_instantiate_trainer_and_data():
    cfg = compose_cfg("train", ["data=sample_text", "strategy=ddp"])
    dm = instantiate(cfg.data)
    assert dm.max_seq_length == 128 and dm.source["format"] == "google"
    assert cfg.trainer.strategy._target_.endswith("DDPStrategy")
    assert instantiate(cfg.optimizer).func.__name__ == "AdamW"
    lamb = compose_cfg("train", ["optimizer=lamb"])
    assert instantiate(lamb.optimizer).func.__name__ == "Lamb"


@pytest.mark.parametrize("task", TASKS)
def test_finetune_composes(task):
    cfg = compose_cfg("finetune", [f"task={task}", "pretrained=/x"])
    OmegaConf.resolve(cfg)
    assert cfg.data._target_.endswith("SquadDataModule" if task.startswith("squad") else "GlueDataModule")
    assert cfg.optimizer.lr == (3e-5 if task.startswith("squad") else 2e-5)
    # the task's own epochs win over the trainer group's default (Google's run_squad: 2), the command line over both
    assert cfg.trainer.max_epochs == (2 if task.startswith("squad") else 3)
    assert compose_cfg("finetune", [f"task={task}", "trainer.max_epochs=1"]).trainer.max_epochs == 1
    assert cfg.module.scheduler.warmup_ratio == 0.1


def test_hparams_search_composes():
    cfg = compose_cfg("finetune", ["task=rte", "pretrained=/x", "hparams_search=glue_grid"])
    assert cfg.hydra.sweeper.params["optimizer.lr"] == "5.0e-5,4.0e-5,3.0e-5,2.0e-5"
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_unknown_config_name_is_clear():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="bert_huge"):
        compose_cfg("train", ["model=bert_huge"])


def test_two_phase_experiments_compose():
    p1 = compose_cfg("train", ["experiment=bert_base_phase1"])
    p2 = compose_cfg("train", ["experiment=bert_base_phase2", "pretrained=/phase1/last.ckpt"])
    assert (p1.data.max_seq_length, p2.data.max_seq_length) == (128, 512)
    assert p1.optimizer._target_ == p2.optimizer._target_ == "bert_pl.training.optim.Lamb"
    assert p1.model.hidden_size == p2.model.hidden_size == 768
    assert p2.data.max_predictions_per_seq == 80 and p2.pretrained == "/phase1/last.ckpt"
    assert p1.data.batch_size * p1.trainer.accumulate_grad_batches * 8 == 65536


def test_pretraining_progress_bar_has_no_negative_epoch_total():
    """Pretraining runs to max_steps with max_epochs=-1: the bar said "Epoch 6/-2"; fine-tuning keeps "Epoch 1/2"."""
    from types import SimpleNamespace

    cfg = compose_cfg("train", [])
    assert cfg.trainer.max_epochs == -1
    bar = instantiate(cfg.callbacks.progress_bar)
    bar._trainer = SimpleNamespace(max_epochs=cfg.trainer.max_epochs)
    assert bar._get_train_description(6).strip() == "Epoch 6"
    bar._trainer = SimpleNamespace(max_epochs=3)
    assert bar._get_train_description(1).strip() == "Epoch 1/2"
