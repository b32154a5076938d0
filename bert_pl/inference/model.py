"""Using a trained model from Python: `bert_pl.load(...)` and what `predict.py` runs.

    import bert_pl
    clf = bert_pl.load("outputs/finetune/mrpc/runs/latest")      # a run folder, .ckpt, latest[:TASK], HF/Google folder
    clf.predict([("The cat sat.", "A cat was sitting.")])       # [{"label": "1", "probabilities": {...}}]
    bert_pl.load("latest:train").fill_mask("Paris is the [MASK] of France.", top_k=5)
    bert_pl.load("outputs/finetune/squad_v1/runs/latest").predict([{"question": ..., "context": ...}])
    bert_pl.load(any_checkpoint).embed(["a sentence"], layers=[-1], pooling="mean")

The head, its label names and the task's settings (max_seq_length, SQuAD's windows and threshold) come from the
checkpoint, so no task config is needed. Inputs are run in batches of similar length through the unpadded encoder.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

from bert_pl.errors import UserError

log = logging.getLogger("bert_pl")


class PredictError(UserError, ValueError):
    pass


def _progress(total: int, enabled: bool):
    if not enabled or total < 2000:
        return None
    try:
        from rich.progress import Progress
    except ImportError:  # pragma: no cover - rich is a dependency
        return None
    progress = Progress(transient=True)
    progress.start()
    progress.add_task("predicting", total=total)
    return progress


def _positive_int(name: str, value, nullable: bool = False):
    """A setting that counts something (batch_size, max_seq_length, top_k): a whole number above 0."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise PredictError(f"{name}={value!r}: expected a whole number of at least 1" +
                           (" (or null for the model's own)" if nullable else ""))
    return int(value)


def _layer_list(layers) -> List[int]:
    layers = list(layers)
    if not layers or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in layers):
        raise PredictError(f"layers={layers}: give a list of layer numbers, e.g. [-1] or [-1,-2]")
    return [int(x) for x in layers]


def _device(device) -> torch.device:
    """The device to run on, refused in one line when it does not exist here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PredictError(f"device={device!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise PredictError(f"device={device}: no CUDA GPU is available here (torch.cuda.is_available() is "
                               f"False); pass device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PredictError(f"device={device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                               f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise PredictError(f"device={device}: MPS is not available here; pass device=cpu")
    return dev


def _length(feature: dict) -> int:
    """Tokens of a feature (for multiple choice: of its longest choice)."""
    ids = feature["input_ids"]
    return max(len(s) for s in ids) if len(ids) and not np.isscalar(ids[0]) else len(ids)


class Model:
    """A checkpoint ready to predict; built by `load`."""

    def __init__(self, ckpt, device: Union[str, torch.device] = "cpu", batch_size: int = 64,
                 max_seq_length: Optional[int] = None):
        from bert_pl.io import tokenization
        from bert_pl.io.checkpoints import load_into
        from bert_pl.model.bert import BertConfig
        from bert_pl.model.heads import get_head

        device = _device(device)
        batch_size = _positive_int("batch_size", batch_size)
        max_seq_length = _positive_int("max_seq_length", max_seq_length, nullable=True)
        if not ckpt.tokenizer_json:
            raise PredictError(f"{ckpt.source} has no vocab.txt/tokenizer.json; put the vocab next to the weights")
        self.source, self.head, self.info = ckpt.source, ckpt.head, dict(ckpt.info)
        self.task_info = dict(self.info.get("task") or {})
        config = BertConfig.from_dict({**ckpt.config.to_dict(), "unpad": True})
        sd = ckpt.state_dict
        kwargs = {}
        head = get_head(self.head)
        if ckpt.kind == "onnx":  # an exported folder: outputs from onnxruntime, settings from bert_pl.json
            self.model = _OnnxNet(ckpt.source, self.info["outputs"])
            kwargs = {"num_labels": len(self.info.get("labels") or []), "problem_type": self.info.get("problem_type")}
            self.has_mlm_head = "mlm_logits" in self.info["outputs"]
        else:
            if head.takes_labels:
                kwargs["num_labels"] = sd[head.weight_prefix + "weight"].shape[0]
            if self.head == "classification":
                kwargs["problem_type"] = self.info.get("problem_type") or ("regression" if kwargs["num_labels"] == 1
                                                                          else "single_label")
            if self.head == "pretraining":
                kwargs["nsp"] = "cls.seq_relationship.weight" in sd
            self.model = head.build(config, **kwargs)
            load_into(self.model, ckpt.source, ckpt)
            self.has_mlm_head = self.head == "pretraining" and "cls.predictions.transform.dense.weight" in sd
        self.problem_type = kwargs.get("problem_type")
        labels = self.info.get("labels")
        self.labels = list(labels) if labels else [f"LABEL_{i}" for i in range(kwargs.get("num_labels", 0))]
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length or self.task_info.get("max_seq_length") or \
            (384 if self.head == "span" else 128)
        self.max_seq_length = min(self.max_seq_length, config.max_position_embeddings)
        self.tokenizer = tokenization.from_json_string(ckpt.tokenizer_json)
        self.tokenizer.no_padding()  # a shipped tokenizer.json may pad: batches are padded here, per batch
        self.tokenizer.no_truncation()
        self.vocab = self.tokenizer.get_vocab()
        self.truncated = 0  # inputs cut to max_seq_length in the last call

    # -- shared -------------------------------------------------------------------------------------------------
    def _encode(self, texts: Sequence[Union[str, Sequence[str]]]) -> list:
        tok = self.tokenizer
        pairs = [t if isinstance(t, str) else tuple(t) for t in texts]
        single = [p for p in pairs if isinstance(p, str)]
        if single and len(single) != len(pairs):
            raise PredictError("inputs mix single texts and pairs; give one kind")
        # one pass: truncated as in fine-tuning (longest first); what was cut shows up in `overflowing`
        tok.enable_truncation(self.max_seq_length, strategy="longest_first")
        try:
            enc = tok.encode_batch(pairs)
        finally:
            tok.no_truncation()  # QA and token classification window long inputs themselves
        self.truncated = sum(bool(e.overflowing) for e in enc)
        if self.truncated:
            log.warning("%d input(s) longer than max_seq_length=%d were truncated", self.truncated,
                        self.max_seq_length)
        return enc

    @torch.no_grad()
    def _run(self, features: List[dict], progress: bool = True, collate=None) -> List[dict]:
        """Features in batches of similar length (unpadded encoder); the model's outputs per feature, in order."""
        from bert_pl.tasks.base import PaddingCollator

        collate = collate or PaddingCollator(self.vocab["[PAD]"])
        order = np.argsort([_length(f) for f in features], kind="stable")
        out: List[Optional[dict]] = [None] * len(features)
        bar = _progress(len(features), progress)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = {k: v.to(self.device, non_blocking=True) for k, v in collate([features[i] for i in idx]).items()}
            result = self.model(**batch)
            for j, i in enumerate(idx):
                out[i] = {k: v[j].float().cpu().numpy() for k, v in result.items()
                          if torch.is_tensor(v) and v.dim() > 0 and k != "loss"}
                out[i]["length"] = _length(features[i])
            if bar is not None:
                bar.update(bar.task_ids[0], advance=len(idx))
        if bar is not None:
            bar.stop()
        return out

    # -- predict ------------------------------------------------------------------------------------------------
    def predict(self, inputs: Union[str, dict, Iterable], progress: bool = True) -> Union[dict, List[dict]]:
        """One result per input, in order; one text (a str) or one QA/multiple-choice dict is one input and gets
        one result, not a list. Classification: a text or a (text_a, text_b) pair per input ->
        {"label", "probabilities"} ({"labels", ...} multi-label, {"score"} regression). Span QA: {"question",
        "context"} dicts -> {"answer", "start", "end", "score"} ("" for no answer, v2). Multiple choice:
        {"context", "choices": [...]} dicts -> {"label": the chosen index, "probabilities": [...]}. Token classification: a
        text or a list of words -> {"entities": [{"type", "text", "start", "end"}], "words": [...]}."""
        if isinstance(inputs, (str, dict)):  # list("Great blender") would be one input per character
            return self.predict([inputs], progress)[0]
        inputs = list(inputs)
        if not inputs:
            raise PredictError("no inputs to predict")
        if self.head == "pretraining":
            raise PredictError(f"{self.source} is a pretraining checkpoint with no task head: use fill_mask(...) "
                               f"or embed(...), or fine-tune it first (finetune.py)")
        if self.head == "classification":
            from bert_pl.tasks.classification import decode_logits

            enc = self._encode(inputs)
            feats = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in enc]
            logits = np.stack([o["logits"] for o in self._run(feats, progress)])
            return decode_logits(logits, self.labels, self.problem_type)
        if self.head == "span":
            return self._predict_span(inputs)
        if self.head == "multiple_choice":
            return self._predict_choices(inputs, progress)
        if self.head == "token_classification":
            return self._predict_tags(inputs, progress)
        raise PredictError(f"predict is not available for {self.head} checkpoints")

    def _predict_tags(self, inputs: list, progress: bool) -> List[dict]:
        """A text (split into words as BERT's basic tokenizer does, with character offsets) or a list of words per
        input -> {"words": [{"word", "tag", "start", "end"}], "entities": [{"type", "text", "start", "end"}]}
        (conlleval's chunks; offsets into the text, None for pre-split words). Long inputs are windowed."""
        from bert_pl.tasks.conlleval import chunks
        from bert_pl.tasks.token_classification import build_features, word_pieces, word_predictions

        splitter = self.tokenizer.pre_tokenizer
        sentences, spans = [], []
        for n, x in enumerate(inputs, 1):
            if isinstance(x, str):
                parts = splitter.pre_tokenize_str(x) if splitter is not None else \
                    [(w, (0, 0)) for w in x.split()]
                sentences.append([w for w, _ in parts])
                spans.append([s for _, s in parts] if splitter is not None else None)
            elif isinstance(x, (list, tuple)) and all(isinstance(w, str) for w in x):
                sentences.append(list(x))
                spans.append(None)
            else:
                raise PredictError(f"input {n}: a token-classification model takes a text or a list of words")
            if not sentences[-1]:
                raise PredictError(f"input {n}: no words")
        pieces = word_pieces(self.tokenizer, sentences)
        feats, windows, _ = build_features(pieces, None, self.vocab["[CLS]"], self.vocab["[SEP]"],
                                           self.max_seq_length, self.task_info.get("doc_stride", 64), False)
        outs = self._run([{k: f[k] for k in ("input_ids", "token_type_ids")} for f in feats], progress)
        preds = word_predictions(windows, [len(s) for s in sentences], [o["logits"] for o in outs], range(len(feats)))
        results = []
        for x, words, span, ids in zip(inputs, sentences, spans, preds):
            tags = [self.labels[i] for i in ids]
            word_rows = [{"word": w, "tag": t, "start": span[i][0] if span else None,
                          "end": span[i][1] if span else None} for i, (w, t) in enumerate(zip(words, tags))]
            entities = []
            for type_, first, last in chunks(tags):
                if span:
                    start, end = span[first][0], span[last][1]
                    text = x[start:end]
                else:
                    start = end = None
                    text = " ".join(words[first:last + 1])
                entities.append({"type": type_, "text": text, "start": start, "end": end})
            results.append({"entities": entities, "words": word_rows})
        return results

    def _predict_choices(self, inputs: List[dict], progress: bool) -> List[dict]:
        """{"context", "choices": [...]} per input -> {"label": the chosen index, "probabilities": [k]}."""
        from bert_pl.tasks.base import softmax
        from bert_pl.tasks.multiple_choice import MultipleChoiceCollator

        for n, x in enumerate(inputs, 1):
            if not isinstance(x, dict) or not x.get("context") or not isinstance(x.get("choices"), (list, tuple)) \
                    or not x["choices"]:
                raise PredictError(f"input {n}: a multiple-choice model takes {{'context': ..., 'choices': [...]}}")
        enc = iter(self._encode([(x["context"], str(c)) for x in inputs for c in x["choices"]]))
        feats = []
        for x in inputs:
            parts = [next(enc) for _ in x["choices"]]
            feats.append({"input_ids": [e.ids for e in parts], "token_type_ids": [e.type_ids for e in parts]})
        results: List[Optional[dict]] = [None] * len(inputs)
        for k in sorted({len(x["choices"]) for x in inputs}):  # a batch holds one number of choices
            idx = [i for i, x in enumerate(inputs) if len(x["choices"]) == k]
            outs = self._run([feats[i] for i in idx], progress, MultipleChoiceCollator(self.vocab["[PAD]"]))
            for i, o in zip(idx, outs):
                p = softmax(o["logits"].astype(np.float64))
                results[i] = {"label": int(p.argmax()), "probabilities": [round(float(q), 6) for q in p]}
        return results

    def _predict_span(self, inputs: List[dict]) -> List[dict]:
        from bert_pl.tasks import squad

        bad = [i for i, x in enumerate(inputs) if not isinstance(x, dict) or not x.get("question")
               or not x.get("context")]
        if bad:
            raise PredictError(f"input {bad[0] + 1}: a question-answering model takes {{'question': ..., "
                               f"'context': ...}} per input")
        info = self.task_info
        articles = [{"paragraphs": [{"context": x["context"], "qas": [{"id": str(i), "question": x["question"]}]}]}
                    for i, x in enumerate(inputs)]
        version_2 = info.get("version") == 2
        examples = squad.examples_from_articles(articles, is_training=False, version_2=version_2)
        feats, meta = squad.convert_examples_to_features(
            examples, self.tokenizer, self.max_seq_length, info.get("doc_stride", 128),
            info.get("max_query_length", 64), is_training=False)
        outs = self._run([{k: f[k] for k in ("input_ids", "token_type_ids")} for f in feats], progress=True)
        starts = [o["start_logits"][:o["length"]] for o in outs]
        ends = [o["end_logits"][:o["length"]] for o in outs]
        preds, nbest, _ = squad.postprocess(examples, meta, starts, ends, self.tokenizer,
                                            info.get("n_best_size", 20), info.get("max_answer_length", 30),
                                            version_2, info.get("null_score_diff_threshold", 0.0))
        results = []
        for i, x in enumerate(inputs):
            answer = preds[str(i)]
            top = next((n for n in nbest[str(i)] if n["text"] == answer), {"probability": None})
            start = x["context"].find(answer) if answer else -1
            results.append({"answer": answer, "start": start if start >= 0 else None,
                            "end": start + len(answer) if start >= 0 else None,
                            "score": None if top["probability"] is None else round(float(top["probability"]), 6)})
        return results

    # -- masked LM and features ---------------------------------------------------------------------------------
    def fill_mask(self, text: Union[str, Sequence[str]], top_k: int = 5) -> list:
        """Top-k tokens and probabilities for each [MASK] of each text (pretraining checkpoints with an MLM head).
        One text -> a list per [MASK] position; several texts -> a list of those."""
        if not self.has_mlm_head:
            raise PredictError(f"{self.source} has no masked-LM head (cls.predictions): fill_mask needs a pretraining "
                               f"checkpoint (train.py's, or a Hugging Face BertForPreTraining/BertForMaskedLM folder)")
        top_k = min(_positive_int("top_k", top_k), len(self.vocab))
        texts = [text] if isinstance(text, str) else list(text)
        mask_id = self.vocab["[MASK]"]
        enc = self._encode(texts)
        results = []
        for t, e in zip(texts, enc):
            if mask_id not in e.ids:
                raise PredictError(f"no [MASK] in {t!r}: write [MASK] where a word should be predicted")
        feats = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in enc]
        with torch.no_grad():
            for f, e in zip(feats, enc):
                ids = torch.tensor([f["input_ids"]], device=self.device)
                types = torch.tensor([f["token_type_ids"]], device=self.device)
                positions = torch.tensor([[i for i, x in enumerate(e.ids) if x == mask_id]], device=self.device)
                logits = self.model(ids, types, torch.ones_like(ids), mlm_positions=positions)["mlm_logits"][0]
                probs = torch.softmax(logits.float(), -1)
                top = probs.topk(top_k, -1)
                results.append([[{"token": self.tokenizer.id_to_token(int(i)), "probability": round(float(p), 6)}
                                 for p, i in zip(ps, ix)] for ps, ix in zip(top.values, top.indices)])
        return results[0] if isinstance(text, str) else results

    def embed(self, texts: Union[str, Sequence[str]], layers: Sequence[int] = (-1,), pooling: str = "cls") -> np.ndarray:
        """Sentence vectors (N, H * len(layers)): the [CLS] vector (`cls`) or the mean over tokens (`mean`) of
        each listed layer (0 = embeddings, -1 = last), concatenated. One text (a str) -> one vector (H * len(layers),)."""
        if isinstance(texts, str):
            return self.embed([texts], layers, pooling)[0]
        if pooling not in ("cls", "mean"):
            raise PredictError(f"pooling={pooling!r}: use cls or mean")
        layers = _layer_list(layers)
        texts = list(texts)
        if not texts:
            raise PredictError("no texts to embed")
        enc = self._encode(texts)
        if isinstance(self.model, _OnnxNet):
            raise PredictError(f"{self.source} is an ONNX export of the model with its head: embed needs the encoder's "
                               f"layers; load the checkpoint it was exported from instead")
        encoder = self.model.bert
        n_layers = encoder.config.num_hidden_layers + 1
        bad = [layer for layer in layers if not -n_layers <= layer < n_layers]
        if bad:
            raise PredictError(f"layers={list(layers)}: this model has hidden states 0..{n_layers - 1} (or -1..-{n_layers})")
        from bert_pl.tasks.base import PaddingCollator

        out = []
        with torch.no_grad():
            for start in range(0, len(enc), self.batch_size):
                chunk = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in enc[start:start + self.batch_size]]
                b = {k: v.to(self.device) for k, v in PaddingCollator(self.vocab["[PAD]"])(chunk).items()}
                hidden = encoder(b["input_ids"], b["token_type_ids"], b["attention_mask"],
                                 output_hidden_states=True)["hidden_states"]
                mask = b["attention_mask"].unsqueeze(-1).float()
                parts = []
                for layer in layers:
                    h = hidden[layer].float()
                    parts.append(h[:, 0] if pooling == "cls" else (h * mask).sum(1) / mask.sum(1))
                out.append(torch.cat(parts, -1).cpu().numpy())
        return np.concatenate(out)


class _OnnxNet:
    """An exported model.onnx under onnxruntime, called like the PyTorch model (the same output names)."""

    def __init__(self, folder: str, outputs: List[str]):
        try:
            import onnxruntime
        except ImportError:
            raise PredictError(f"{folder} is an ONNX export: pip install onnxruntime to run it") from None
        self.session = onnxruntime.InferenceSession(str(Path(folder) / "model.onnx"),
                                                    providers=["CPUExecutionProvider"])
        self.outputs = outputs

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, input_ids, token_type_ids, attention_mask, mlm_positions=None, **_):
        feed = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        got = self.session.run(self.outputs, {k: v.cpu().numpy() for k, v in feed.items()})
        out = {name: torch.from_numpy(value) for name, value in zip(self.outputs, got)}
        if mlm_positions is not None:  # the export gives every position's logits; keep the asked ones
            logits = out["mlm_logits"]
            out["mlm_logits"] = logits.gather(1, mlm_positions.cpu()[..., None].expand(-1, -1, logits.shape[-1]))
        return out


def _onnx_export(folder: Path):
    """An ONNX folder written by `bert_pl.export` as a Checkpoint without weights (kind "onnx")."""
    import json

    from bert_pl.io.checkpoints import Checkpoint
    from bert_pl.model.bert import BertConfig

    meta = json.loads((folder / "bert_pl.json").read_text())
    if "config" not in meta:
        raise PredictError(f"{folder}/bert_pl.json lacks the model config: export it again with this version")
    tokenizer = folder / "tokenizer.json"
    info = {k: meta.get(k) for k in ("head", "labels", "problem_type", "task", "outputs")}
    return Checkpoint(BertConfig.from_dict(meta["config"]), {}, tokenizer.read_text() if tokenizer.is_file() else None,
                      str(folder), "onnx", info)


def load(path, device: Union[str, torch.device] = "cpu", batch_size: int = 64,
         max_seq_length: Optional[int] = None) -> Model:
    """A model ready to predict from any checkpoint: a bert-pl .ckpt or run folder, `latest` / `latest:TASK`, a
    Hugging Face or Google folder, a hub id (online), or an ONNX export (`bert_pl.export --format onnx`; runs
    under onnxruntime on CPU)."""
    from bert_pl.io.checkpoints import resolve

    # settings first: a wrong one is reported before a large checkpoint is read
    _device(device)
    _positive_int("batch_size", batch_size)
    _positive_int("max_seq_length", max_seq_length, nullable=True)
    folder = Path(str(path)).expanduser()
    if (folder / "model.onnx").is_file() and (folder / "bert_pl.json").is_file():
        if torch.device(device).type != "cpu":
            raise PredictError(f"{folder} is an ONNX export, run on CPU by onnxruntime: pass device=cpu")
        return Model(_onnx_export(folder), device, batch_size, max_seq_length)
    return Model(resolve(path), device, batch_size, max_seq_length)


# -- predict.py -----------------------------------------------------------------------------------------------------
def read_inputs(cfg, head: str, task_info: Optional[dict] = None):
    """(ids or None, examples) from `text=`, `input=-` (stdin) or a file. Plain text: one example per line, a tab
    between pair members; a blank line inside the text is kept as None (its output line says it was skipped, so
    output line N is input line N), blank lines at the end are dropped. csv/tsv/json/jsonl: the text columns (given or found), or question/context for QA.
    Token classification: also JSON lines with "tokens", or CoNLL columns (any other extension). Multiple choice:
    the training data's column layout (`task_info["columns"]`, e.g. SWAG's sent1/sent2/ending0..), else
    context + choices."""
    import json
    import sys
    from pathlib import Path

    from bert_pl.tasks.readers import ID_COLUMN_CANDIDATES, TEXT_COLUMN_CANDIDATES, read_rows, text_value

    if cfg.text is not None:
        if not str(cfg.text).strip():
            raise PredictError("text= is empty: pass the text to predict, text=\"...\" (or input=FILE)")
        return None, [_split_line(str(cfg.text), head, "text=")]
    if cfg.input is None:
        raise PredictError("nothing to predict: pass input=FILE (or input=- for stdin) or text=\"...\"")
    suffix = Path(cfg.input).suffix.lower() if cfg.input != "-" else ""
    if head == "token_classification" and cfg.input != "-" and suffix != ".txt":
        return None, _read_sentences(Path(cfg.input), suffix)
    if cfg.input == "-" or suffix in ("", ".txt"):
        lines = sys.stdin.read().splitlines() if cfg.input == "-" else _read_text(Path(cfg.input))
        where = "stdin" if cfg.input == "-" else cfg.input
        while lines and not lines[-1].strip():
            lines.pop()
        examples = [_split_line(line, head, f"{where}: line {n}") if line.strip() else None
                    for n, line in enumerate(lines, 1)]
        if not any(x is not None for x in examples):
            raise PredictError(f"{where}: no input lines")
        blank = [n for n, x in enumerate(examples, 1) if x is None]
        if blank:
            shown = ", ".join(map(str, blank[:5])) + (", ..." if len(blank) > 5 else "")
            log.warning("%s: %d blank line(s) (line %s) get the output line %s, so that output line N is input "
                        "line N", where, len(blank), shown, json.dumps(BLANK_LINE_RESULT))
        return None, examples
        return None, examples
    columns, rows = read_rows(Path(cfg.input))
    if head == "multiple_choice" and not cfg.text_columns:
        return _read_choice_rows(cfg.input, columns, rows, task_info)
    wanted = list(cfg.text_columns) if cfg.text_columns else None
    if head == "span":
        wanted = wanted or ["question", "context"]
    if head == "multiple_choice":
        wanted = wanted or ["context", "choices"]
    if wanted is None:
        wanted = next((list(c) for c in TEXT_COLUMN_CANDIDATES if all(x in columns for x in c)), None)
    if not wanted or any(c not in columns for c in wanted):
        raise PredictError(f"{cfg.input}: text column(s) {wanted or '?'} not found; columns: {columns}. Pass "
                           f"text_columns=[...]")
    id_col = cfg.id_column or next((c for c in ID_COLUMN_CANDIDATES if c in columns), None)
    ids, examples = [], []
    for n, (lineno, row) in enumerate(rows):
        try:
            values = [text_value(row.get(c), c) for c in wanted[:1 if head == "multiple_choice" else None]]
        except ValueError as e:
            raise PredictError(f"{cfg.input}: row {lineno}: {e}") from None
        if head == "span":
            examples.append({"question": values[0], "context": values[1]})
        elif head == "multiple_choice":
            choices = row[wanted[1]]
            if isinstance(choices, str):
                try:
                    choices = json.loads(choices)
                except ValueError:
                    raise PredictError(f"{cfg.input}: row {lineno}: {wanted[1]!r} must be a list of choices "
                                       f"(a JSON array in a csv/tsv cell)") from None
            examples.append({"context": values[0], "choices": choices})  # checked by Model.predict
        else:
            examples.append(values[0] if len(values) == 1 else tuple(values))
        ids.append(str(row[id_col]) if id_col and row.get(id_col) is not None else str(n))
    if not examples:
        raise PredictError(f"{cfg.input}: no rows")
    return ids, examples


def _read_choice_rows(path, columns, rows, task_info: Optional[dict]):
    """Multiple-choice rows in the layout the model was trained on, else `context` + `choices` (or ending0..)."""
    from bert_pl.tasks.base import TaskDataError
    from bert_pl.tasks.multiple_choice import MultipleChoiceTask

    rows = list(rows)
    saved = (task_info or {}).get("columns")
    error = None
    for layout in ([saved] if saved else []) + [None]:  # None: the default layout
        try:
            ids, examples = MultipleChoiceTask.prediction_examples(columns, rows, str(path), layout)
        except TaskDataError as e:
            error = error or e
            continue
        if not examples:
            raise PredictError(f"{path}: no rows")
        return ids, examples
    raise PredictError(f"{error}; or pass text_columns=[CONTEXT,CHOICES_LIST]") from None


def _read_sentences(path, suffix: str) -> list:
    """Word lists for a token-classification model from the formats it trains on: JSON lines ({"tokens": [...]})
    or CoNLL columns (any other extension; the tag columns, if any, are ignored)."""
    from bert_pl.tasks.token_classification import read_conll, read_json_sentences

    if not path.is_file():
        raise PredictError(f"input file {path} not found")
    reader = read_json_sentences if suffix in (".json", ".jsonl") else read_conll
    sentences, _ = reader(path, labelled=None)
    bad = next((s for s in sentences if s.problem), None)
    if bad is not None:
        raise PredictError(f"{path}: line {bad.line}: {bad.problem}")
    if not sentences:
        raise PredictError(f"{path}: no sentences")
    return [s.tokens for s in sentences]


def _read_text(path):
    if not path.is_file():
        raise PredictError(f"input file {path} not found")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise PredictError(f"{path}: not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8") from None


def _split_line(line: str, head: str, where: str):
    parts = line.rstrip("\n").split("\t")
    if head == "multiple_choice":
        if len(parts) < 3:
            raise PredictError(f"{where}: a multiple-choice model takes 'context<TAB>choice 1<TAB>choice 2...' per line")
        return {"context": parts[0], "choices": parts[1:]}
    if head == "span":
        if len(parts) != 2:
            raise PredictError(f"{where}: a question-answering model takes 'question<TAB>context' per line")
        return {"question": parts[0], "context": parts[1]}
    if len(parts) > 2:
        raise PredictError(f"{where}: {len(parts)} tab-separated fields; give one text, or two for a pair")
    return parts[0] if len(parts) == 1 else tuple(parts)


# The output line of a blank input line (predict.py keeps one output line per input line).
BLANK_LINE_RESULT = {"skipped": "blank line"}
# Model weights and saved state: never a name for a predictions file.
_MODEL_SUFFIXES = (".ckpt", ".safetensors", ".bin", ".onnx", ".pt", ".pth", ".h5", ".msgpack", ".pb", ".index",
                   ".pkl", ".pickle", ".npz", ".npy")
# Keys of predict.py's output lines: an existing file whose first line has only these may be replaced (a data file
# has its text fields besides, e.g. {"text", "label"}).
_RESULT_KEYS = {"id", "label", "labels", "probabilities", "score", "answer", "entities", "words", "masks", "embedding",
                *BLANK_LINE_RESULT}


def check_output(output, input_file=None, model=None) -> None:
    """Refuse an output= that would destroy something: a model/checkpoint file (by name or inside a checkpoints/
    folder), the input file or the model (also through a link), a folder, or any existing file that is not an
    earlier predictions file of predict.py."""
    import json
    import os

    if "://" in str(output):
        return  # a remote location: nothing local to protect
    out = Path(str(output)).expanduser()
    fix = "pass a new file, e.g. output=predictions.jsonl"
    if out.suffix.lower() in _MODEL_SUFFIXES:
        raise PredictError(f"output={output}: a {out.suffix} file holds model weights, not predictions (JSON lines); "
                           f"{fix}")
    if "checkpoints" in out.resolve().parts[:-1]:
        raise PredictError(f"output={output} is inside a run's checkpoints/ folder; {fix}")
    if out.is_dir():
        raise PredictError(f"output={output} is a folder; {fix}")
    if not out.exists():
        return
    for what, other in (("the input file", input_file), ("the model", model)):
        if other not in (None, "-") and Path(str(other)).expanduser().exists() and                 os.path.samefile(out, Path(str(other)).expanduser()):
            raise PredictError(f"output={output} is {what} ({other}): predictions never replace it; {fix}")
    with open(out, "rb") as f:
        first = f.readline(1 << 16).strip()
    try:
        row = json.loads(first.decode("utf-8")) if first else {}
    except (UnicodeDecodeError, ValueError):
        row = None
    if not isinstance(row, dict) or (row and not (set(row) <= _RESULT_KEYS and set(row) - {"id"})):
        raise PredictError(f"output={output} exists and is not a predictions file of predict.py, so it is not "
                           f"replaced; {fix} (or delete that file first)")


def _check_pairs(model: Model, examples: list) -> None:
    """A pair model gets pairs and a single-text model single texts (line number of the first that differs)."""
    if model.head != "classification" or not examples:
        return
    want_pairs = model.task_info.get("pairs")
    if want_pairs is None:
        return
    for n, x in enumerate(examples, 1):
        if x is not None and isinstance(x, str) == bool(want_pairs):
            raise PredictError(f"input {n}: the model was fine-tuned on {'pairs' if want_pairs else 'single texts'}; "
                               f"give {'two tab-separated texts' if want_pairs else 'one text'} per line")


def run_predict(cfg) -> list:
    """predict.py: load the model, read the inputs, write JSONL (one line per input, in order) or a console table."""
    import json
    import sys
    from pathlib import Path

    # every setting is checked before the model is read: a refusal costs nothing
    _positive_int("top_k", cfg.top_k)
    _layer_list(cfg.layers)
    if cfg.output:
        check_output(cfg.output, cfg.input, cfg.model)
    model = load(cfg.model, cfg.device, cfg.batch_size, cfg.max_seq_length)
    mode = cfg.mode
    if mode == "auto":
        mode = "fill_mask" if model.head == "pretraining" else "predict"
    if mode not in ("predict", "fill_mask", "embed"):
        raise PredictError(f"mode={mode!r}: use auto, predict, fill_mask or embed")
    ids, lines = read_inputs(cfg, model.head if mode == "predict" else "classification", model.task_info)
    examples = [x for x in lines if x is not None]  # blank lines get BLANK_LINE_RESULT in their place below
    if mode == "predict":
        _check_pairs(model, lines)
        results = model.predict(examples)
    elif mode == "fill_mask":
        texts = [x if isinstance(x, str) else " ".join(x) for x in examples]
        results = [{"masks": r} for r in model.fill_mask(texts, top_k=cfg.top_k)]
    else:
        vectors = model.embed([x if isinstance(x, str) else " ".join(x) for x in examples], list(cfg.layers),
                              cfg.pooling)
        results = [{"embedding": [round(float(v), 6) for v in row]} for row in vectors]
    if len(examples) < len(lines):
        found = iter(results)
        results = [dict(BLANK_LINE_RESULT) if x is None else next(found) for x in lines]
        examples = lines
    if ids is not None:
        results = [{"id": i, **r} for i, r in zip(ids, results)]
    if cfg.output:
        from bert_pl.io.atomic import atomic_write_text

        out = Path(str(cfg.output)).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        print(f"wrote {len(results)} predictions to {out}", file=sys.stderr)
    else:
        for x, r in zip(examples, results):
            shown = "(blank line)" if x is None else x if isinstance(x, str) else " | ".join(
                str(v) for v in (x.values() if isinstance(x, dict) else x))
            print(f"{shown[:60]:<62}{json.dumps({k: v for k, v in r.items() if k != 'embedding'}, ensure_ascii=False)}")
    return results
