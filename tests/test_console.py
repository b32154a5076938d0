"""What a run prints: plain progress lines when the output goes to a file, no zero FLOPs column, and none of the
messages every run repeated (Lightning's LeafSpec deprecation, `datasets`' framework versions)."""
import io
import logging
import warnings
from types import SimpleNamespace

from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar

from bert_pl.training.progress import (ModelSummaryWithoutZeroFlops, PlainProgressBar, StepBoundedRichProgressBar,
                                       suit_the_console)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_becomes_plain_lines_when_the_output_is_not_a_terminal():
    trainer = SimpleNamespace(callbacks=[StepBoundedRichProgressBar(), RichModelSummary(max_depth=2)])
    suit_the_console(trainer, io.StringIO())
    assert isinstance(trainer.callbacks[0], PlainProgressBar)
    assert type(trainer.callbacks[1]) is ModelSummaryWithoutZeroFlops and trainer.callbacks[1]._max_depth == 2
    on_terminal = SimpleNamespace(callbacks=[RichProgressBar()])
    suit_the_console(on_terminal, _Terminal())
    assert type(on_terminal.callbacks[0]) is RichProgressBar


def test_plain_progress_lines_say_step_share_time_and_loss(capsys, monkeypatch):
    bar = PlainProgressBar(every=0)
    trainer = SimpleNamespace(max_steps=10, global_step=5, current_epoch=0)
    monkeypatch.setattr(bar, "get_metrics", lambda trainer, module: {"train/loss": 2.345678, "v_num": 0})
    bar.on_train_start(trainer, None)
    bar.on_train_batch_end(trainer, None, None, None, 4)
    assert capsys.readouterr().out.startswith("epoch 0 step 5/10 (50%), 0 s, train/loss 2.346\n")
    bar.disable()
    bar.on_train_batch_end(trainer, None, None, None, 5)
    assert capsys.readouterr().out == ""


def test_the_model_summary_drops_flops_only_when_none_were_counted(capsys):
    data = [(" ", ["0"]), ("Name", ["model"]), ("Type", ["Bert"]), ("Params", ["711 K"]), ("Mode", ["train"]),
            ("FLOPs", ["0"])]
    ModelSummaryWithoutZeroFlops.summarize(data, 711000, 711000, 2.8, {"train": 50, "eval": 0}, 0)
    out = capsys.readouterr().out
    assert "FLOPs" not in out and "Bert" in out and "Trainable params" in out
    ModelSummaryWithoutZeroFlops.summarize(data, 711000, 711000, 2.8, {"train": 50, "eval": 0}, 1000)
    assert "Total FLOPs" in capsys.readouterr().out


def test_only_the_known_noise_is_silenced(caplog):
    from bert_pl.cli.entry import silence_known_noise

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        silence_known_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`")
        warnings.warn("something else is deprecated", DeprecationWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]
    with caplog.at_level(logging.INFO, logger="datasets"):
        logging.getLogger("datasets").info("TensorFlow version 2.21.0 available.")
        logging.getLogger("datasets").info("Loading a dataset")
    assert "TensorFlow version" not in caplog.text and "Loading a dataset" in caplog.text


def test_plain_progress_says_where_training_ended(capsys, monkeypatch):
    bar = PlainProgressBar(every=3600)
    trainer = SimpleNamespace(max_steps=-1, estimated_stepping_batches=24, global_step=24, current_epoch=3)
    monkeypatch.setattr(bar, "get_metrics", lambda trainer, module: {"train/loss": 0.5})
    bar.on_train_start(trainer, None)
    bar.on_train_batch_end(trainer, None, None, None, 0)  # within `every`: nothing yet
    bar.on_train_end(trainer, None)
    assert capsys.readouterr().out == "training ended: step 24/24 (100%), 0 s, train/loss 0.5\n"
