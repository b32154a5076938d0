"""The TPU path on torch-xla's CPU device (PJRT_DEVICE=CPU): the real pretraining LightningModule, composed with
`accelerator=tpu`, trains a few steps on an XLA device and compiles its step once. Needs its own environment,
since torch-xla pins torch: `make test-xla`."""
import os

import pytest

os.environ.setdefault("PJRT_DEVICE", "CPU")
torch_xla = pytest.importorskip("torch_xla", reason="torch-xla is not installed here; run `make test-xla`")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from lightning.pytorch.accelerators import XLAAccelerator  # noqa: E402

from bert_pl.training import checks, trainer as trainer_building  # noqa: E402
from helpers import compose_cfg  # noqa: E402

pytestmark = pytest.mark.xla


class CPUXLAAccelerator(XLAAccelerator):
    """Lightning's TPU accelerator, told that torch-xla's CPU device counts as one device."""

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def auto_device_count() -> int:
        return 1

    @staticmethod
    def parse_devices(devices) -> int:
        return 1  # Lightning's TPU parser asks the TPU VM's metadata server how many chips it has

    @staticmethod
    def get_parallel_devices(devices):
        return [torch.device("xla", 0)]


class CompileCounter(L.Callback):
    """XLA compilations so far after every training step, and where the weights and the batch lived."""

    def __init__(self):
        self.after_step, self.devices = [], set()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import torch_xla.debug.metrics as met

        data = met.metric_data("CompileTime")
        self.after_step.append(data[0] if data else 0)
        self.devices |= {next(pl_module.parameters()).device.type, batch["input_ids"].device.type}


def test_pretraining_steps_on_the_xla_device_compile_once(tmp_path):
    cfg = compose_cfg("train", ["accelerator=tpu", "model=bert_tiny", "data.source.max_chars=200000",
                                "data.tokenizer.vocab_size=2000", "data.batch_size=8", "data.max_seq_length=64",
                                "data.max_predictions_per_seq=10", "data.num_workers=0", "data.val_fraction=0",
                                f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_steps=8"],
                      tmp_path)
    assert cfg.data.static_shapes and cfg.module.on_nonfinite == "ignore" and not cfg.model.unpad
    L.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data)
    tokenizer = datamodule.load_tokenizer()
    module = instantiate(cfg.module, _convert_="all", model=checks.model_dict(cfg.model, tokenizer.get_vocab_size()),
                         optimizer=instantiate(cfg.optimizer))
    module.tokenizer_json = tokenizer.to_str()
    counter = CompileCounter()
    callbacks = [c for c in trainer_building.instantiate_group(cfg.callbacks)
                 if not isinstance(c, L.pytorch.callbacks.RichProgressBar)]
    trainer = instantiate(cfg.trainer, accelerator=CPUXLAAccelerator(), devices=1,
                          logger=trainer_building.instantiate_group(cfg.logger),
                          callbacks=[*callbacks, counter], enable_progress_bar=False, limit_val_batches=0)
    trainer.fit(module, datamodule=datamodule)

    assert trainer.global_step == 8
    assert counter.devices == {"xla"}
    # Step 1 compiles the step (and the optimizer's state creation); every later step reuses the compiled graphs.
    print("compilations after each step:", counter.after_step)
    assert counter.after_step[1] == counter.after_step[-1], counter.after_step
    assert counter.after_step[1] - counter.after_step[0] <= 1, counter.after_step  # at most AdamW's state creation
    loss = float(trainer.callback_metrics["train/loss"])
    assert 0 < loss < 20
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
