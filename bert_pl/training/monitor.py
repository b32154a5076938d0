"""What a run shows while it trains, and what each job leaves in its loggers.

`TrainingMonitor` (conf/callbacks/*.yaml, `monitor`) logs through Lightning, so the values land in every logger
(csv/metrics.csv, TensorBoard, W&B) at each logged step:

    perf/tokens_per_s   real tokens (padding excluded) per second of training steps, all devices together
    perf/mfu            model FLOPs utilisation, where the device's peak FLOP/s is known (H100, H200, A100, ...)
                        or given (callbacks.monitor.peak_flops)
    train/grad_norm     the gradients' total L2 norm before clipping

and, with `log_epoch`, `perf/tokens_per_s_epoch` once per epoch. The learning rate comes from Lightning's
LearningRateMonitor, the losses from the modules. Model FLOPs per token: 6 x the non-embedding parameters
(forward + backward) plus 12 x layers x hidden x sequence length for attention (Kaplan et al. 2020; PaLM, app. B).

`log_config` and `end_job` (called by bert_pl.training.jobs) give every job its resolved config as hyperparameters,
its final dev metrics as the run's summary, a `curves.png` in its run folder, and close its W&B run, so that each
job of a `-m` sweep is a run of its own.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("bert_pl")

# Dense (no sparsity) peaks that Lightning's table lacks or reports with 2:4 sparsity; FLOP/s per device.
_PEAK_FLOPS = {"h200": {torch.bfloat16: 989.4e12, torch.float16: 989.4e12, "tfloat32": 494.7e12,
                        torch.float32: 66.9e12}}


def real_tokens(batch: dict) -> tuple:
    """(tokens that are not padding, sum over sequences of their length squared) of a batch. Packed rows number
    their sequences in `sequence_ids` (0 = padding); other batches mark padding in `attention_mask`."""
    if "sequence_ids" in batch:
        ids = batch["sequence_ids"].long()
        lengths = torch.nn.functional.one_hot(ids, int(ids.max()) + 1).sum(1)[:, 1:]  # (rows, sequences)
    elif "attention_mask" in batch:
        lengths = batch["attention_mask"].long().sum(-1)
    else:
        ids = batch["input_ids"]
        lengths = torch.full(ids.shape[:-1], ids.shape[-1], device=ids.device)
    lengths = lengths.reshape(-1)
    return int(lengths.sum()), int((lengths * lengths).sum())


class TokenClock:
    """Real tokens, their attention term and the seconds of the training steps that processed them."""

    def __init__(self):
        self.tokens, self.squares, self.seconds, self._t0 = 0, 0, 0.0, None
        self.all_ranks_tokens: Optional[int] = None  # set by gather(): every device's tokens together

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, batch) -> Optional[tuple]:
        """Count the batch; returns (tokens, squares, seconds) of this step. Reading the count waits for the
        device, so on a GPU the time includes the step's kernels, not only their launch."""
        if self._t0 is None:
            return None
        tokens, squares = real_tokens(batch)
        seconds = time.perf_counter() - self._t0
        self._t0 = None
        self.add(tokens, squares, seconds)
        return tokens, squares, seconds

    def add(self, tokens: int, squares: int, seconds: float) -> None:
        self.tokens += tokens
        self.squares += squares
        self.seconds += seconds

    def gather(self, trainer, pl_module) -> None:
        """Add up every rank's tokens (collective: called on every rank, at the same point)."""
        self.all_ranks_tokens = self.tokens
        if trainer.world_size > 1:
            total = trainer.strategy.reduce(torch.tensor(float(self.tokens), dtype=torch.float64,
                                                         device=pl_module.device), reduce_op="sum")
            self.all_ranks_tokens = int(total.item())

    def rate(self) -> Optional[float]:
        """Tokens per second of training steps, all devices together once gathered."""
        tokens = self.tokens if self.all_ranks_tokens is None else self.all_ranks_tokens
        return tokens / self.seconds if self.seconds else None


def _compute_dtype(trainer):
    from lightning.pytorch.callbacks.throughput_monitor import _plugin_to_compute_dtype

    return _plugin_to_compute_dtype(trainer.precision_plugin)


def device_peak_flops(trainer) -> Optional[float]:
    """The accelerator's peak FLOP/s for the run's precision, or None (CPUs, unknown cards)."""
    device = trainer.strategy.root_device
    if device.type not in ("cuda", "xla"):
        return None
    dtype = _compute_dtype(trainer)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        for chip, peaks in _PEAK_FLOPS.items():
            if chip in name:
                if dtype is torch.float32 and torch.get_float32_matmul_precision() != "highest":
                    dtype = "tfloat32"
                return peaks.get(dtype)
    from lightning.fabric.utilities.throughput import get_available_flops

    try:
        return get_available_flops(device, dtype)
    except Exception:  # noqa: BLE001 (no peak is "MFU not logged", never a failed run)
        return None


def non_embedding_parameters(module: torch.nn.Module) -> int:
    """Parameters that take part in matmuls for every token (embedding lookups cost no FLOPs)."""
    return sum(p.numel() for name, p in module.named_parameters() if ".embeddings." not in f".{name}")


class TrainingMonitor(Callback):
    """Tokens/s, MFU and the gradient norm, logged at every logged step (see the module's docstring)."""

    def __init__(self, log_epoch: bool = False, peak_flops: Optional[float] = None):
        self.log_epoch = log_epoch
        self.peak_flops = peak_flops
        self.clock = TokenClock()  # the whole fit: train.py's end-of-run tokens/s
        self._window = TokenClock()  # since the last logged step
        self._epoch = TokenClock()
        self._stepped = False
        self._flops_per_token = self._attention_flops = 0
        self._peak = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self._flops_per_token = 6 * non_embedding_parameters(pl_module)
        config = getattr(pl_module, "config", None)
        self._attention_flops = 12 * config.num_hidden_layers * config.hidden_size if config is not None else 0
        self._peak = self.peak_flops or device_peak_flops(trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch = TokenClock()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.clock.start()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self._stepped = True
        if not trainer._logger_connector.should_update_logs:  # as Lightning's LearningRateMonitor decides
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))
        if _sharded(trainer):  # each rank holds a slice of the gradients: add their squares
            norm = trainer.strategy.reduce(norm.square(), reduce_op="sum").sqrt()
        pl_module.log("train/grad_norm", norm, on_step=True, on_epoch=False, batch_size=1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = self.clock.stop(batch)
        if step is None:
            return
        self._window.add(*step)
        self._epoch.add(*step)
        # a step's micro-batches (accumulate_grad_batches) all count; the rate is logged once the optimizer stepped
        stepped, self._stepped = self._stepped, False
        if stepped and trainer._logger_connector.should_update_logs:
            self._log(trainer, pl_module, self._window, "", on_step=True)
            self._window = TokenClock()

    def on_train_end(self, trainer, pl_module) -> None:
        self.clock.gather(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.log_epoch and self._epoch.seconds:
            self._log(trainer, pl_module, self._epoch, "_epoch", on_step=False)

    def _log(self, trainer, pl_module, clock: TokenClock, suffix: str, on_step: bool) -> None:
        tokens, squares = clock.tokens, clock.squares
        if trainer.world_size > 1:  # every rank reaches the same logged steps: one small all-reduce there
            total = trainer.strategy.reduce(torch.tensor([tokens, squares], dtype=torch.float64,
                                                         device=pl_module.device), reduce_op="sum")
            tokens, squares = (float(v) for v in total.cpu())
        seconds = clock.seconds
        options = dict(on_step=on_step, on_epoch=not on_step, sync_dist=False, rank_zero_only=True, batch_size=1)
        pl_module.log(f"perf/tokens_per_s{suffix}", tokens / seconds, **options)
        if self._peak:
            flops = self._flops_per_token * tokens + self._attention_flops * squares
            pl_module.log(f"perf/mfu{suffix}", flops / seconds / (self._peak * trainer.world_size), **options)


def _sharded(trainer) -> bool:
    from lightning.pytorch.strategies import FSDPStrategy

    return isinstance(trainer.strategy, FSDPStrategy) and trainer.world_size > 1


# -- one run per job in every logger ----------------------------------------------------------------------------
def resolved_config(cfg) -> dict:
    """The job's composed config with every interpolation resolved (Hydra's own settings left out)."""
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(cfg, resolve=True)
    params.pop("hydra", None)
    return params


def log_config(trainer, cfg) -> None:
    """Each logger gets the resolved config as the run's hyperparameters (W&B config, TensorBoard hparams, the
    CSV logger's hparams.yaml)."""
    if not trainer.loggers:
        return
    params = resolved_config(cfg)
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def final_metrics(trainer, results: Optional[dict] = None) -> dict:
    """The numbers a job ends with: fine-tuning's dev metrics at the best epoch (from results.json's content) and
    its best value; pretraining's last validation."""
    if results is not None:
        metrics = {f"dev/{split}/{name}": value for split, values in (results.get("dev") or {}).items()
                   for name, value in values.items()}
        best = results.get("best") or {}
        if best.get("value") is not None:
            metrics[f"best/{best['metric']}"] = best["value"]
            metrics["best/epoch"] = best["epoch"]
    else:
        metrics = {f"final/{k}": v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    out = {}
    for key, value in metrics.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out[key] = value
    return out


def end_job(trainer, cfg, results: Optional[dict] = None) -> None:
    """After a job: its final metrics become each logger's run summary, `curves.png` is drawn in the run folder
    (rank 0), and its W&B run is finished, so the next job of a sweep starts a run of its own."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    if not trainer.is_global_zero:
        return
    metrics = final_metrics(trainer, results)
    for logger in trainer.loggers:
        try:
            if isinstance(logger, TensorBoardLogger):  # the hparams view pairs the config with these numbers
                logger.log_hyperparams(resolved_config(cfg), metrics)
            elif isinstance(logger, WandbLogger):
                logger.experiment.summary.update(metrics)
            logger.save()
        finally:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                logger.experiment.finish()
    write_curves(trainer, Path(cfg.paths.output_dir))


def metrics_csv(trainer) -> Optional[Path]:
    from lightning.pytorch.loggers import CSVLogger

    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            return Path(logger.log_dir) / "metrics.csv"
    return None


def write_curves(trainer, run_dir: Path) -> Optional[Path]:
    """`curves.png` from the run's csv/metrics.csv. A plot is never worth a failed run: any problem is one warning."""
    source = metrics_csv(trainer)
    if source is None or not source.is_file():  # no CSV logger, or nothing logged (an evaluate-only run)
        log.info("no curves.png: no csv/metrics.csv (logger=csv, the default, or logger=many writes it)")
        return None
    try:
        from bert_pl.training import plots

        out = plots.curves([plots.read_run(source, label=run_dir.name)], run_dir / "curves.png",
                           title=str(run_dir))
    except Exception as e:  # noqa: BLE001
        log.warning("curves.png was not drawn (%s: %s); the run itself is complete", type(e).__name__, e)
        return None
    log.info("training curves: %s", out)
    return out
