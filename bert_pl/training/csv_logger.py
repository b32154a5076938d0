"""Lightning's CSV logger, made to continue a resumed run: `metrics.csv` is never wiped, rows are flushed with every
checkpoint (and, as configured, every step), and on resume the rows a killed run logged after its checkpoint are
dropped (the resumed run logs those steps again), so the file of a killed-and-resumed run reads like the
uninterrupted run's."""
from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        if self._fs.isfile(self.metrics_file_path):  # new rows go under the existing header (widened if needed)
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))

    def _check_log_dir_exists(self) -> None:
        """Lightning warns that it will delete an existing file; this writer appends instead."""

    def rewind(self, step: int) -> None:
        """Drop the rows logged at `step` or later (and any not yet written)."""
        self.metrics = [m for m in self.metrics if m["step"] < step]
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step") and int(float(r["step"])) < step]
        with self._fs.open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(rows)


class CSVLogger(_LightningCSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    def rewind(self, step: int) -> None:
        self.experiment.rewind(step)
