"""The Python API as a user meets it: `help(bert_pl)`, a loaded model that behaves like a Hugging Face pipeline
(one input -> one result, a list -> a list, callable, a repr that says what it is)."""
import pydoc

import pytest


def test_help_shows_the_api():
    import bert_pl

    text = pydoc.render_doc(bert_pl, renderer=pydoc.plaintext)
    for call in ("load(path", "finetune(task", "pretrain(overrides"):
        assert call in text, call
    assert "one input and gets one result" in text and "Run" in text


def test_a_model_is_called_like_a_pipeline(tiny_checkpoint):
    import bert_pl

    path, _ = tiny_checkpoint("classification", info={"labels": ["no", "yes"], "task": {"pairs": True}})
    model = bert_pl.load(path, batch_size=3)
    pair = ("The cat sat.", "A cat was sitting.")
    one = model.predict(pair)
    assert isinstance(one, dict) and one["label"] in ("no", "yes")  # a tuple is one pair, not two texts
    many = model.predict([pair, ("Stocks fell.", "Markets rose."), pair, pair])  # more inputs than one batch
    assert len(many) == 4 and many[0] == one == many[2] and model(pair) == one and model([pair]) == [one]
    shown = repr(model)
    assert "head='classification'" in shown and "labels=['no', 'yes']" in shown and "device='cpu'" in shown
    assert str(path) in shown and "max_seq_length=128" in shown
    with pytest.raises(bert_pl.inference.model.PredictError, match="input 1: the model was fine-tuned on pairs"):
        model("just one text")


def test_a_pretraining_checkpoint_called_fills_masks(tiny_checkpoint):
    import bert_pl

    model = bert_pl.load(tiny_checkpoint("pretraining")[0])
    text = "Paris is the [MASK] of France."
    assert model(text) == model.fill_mask(text) and len(model(text)) == 1  # one [MASK] -> one list of top-k
    assert len(model([text, text])) == 2


def test_a_missing_model_is_named_by_the_setting_that_named_it(tmp_path):
    import bert_pl
    from bert_pl.errors import UserError

    with pytest.raises(UserError, match=f"^model={tmp_path / 'nothere'} does not exist: pass a bert-pl run folder"):
        bert_pl.load(tmp_path / "nothere")
