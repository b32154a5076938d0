"""One loader for every BERT checkpoint format, and the Hugging Face writer.

`resolve(pretrained)` recognises (after `bert_pl.io.runs.expand`: `latest`, `latest:TASK`, a run folder):
- a bert-pl Lightning checkpoint (`.ckpt` from train.py / finetune.py, or from `python -m bert_pl.export`);
- a Hugging Face folder: config.json + model.safetensors or pytorch_model.bin, with or without the `bert.` prefix;
- a Google TF folder: bert_config.json + bert_model.ckpt.* (+ vocab.txt); read with TensorFlow (optional extra);
- a hub id (`org/name`) when online, fetched with huggingface_hub into the local cache.
Every format becomes the same thing: a BertConfig, a state dict in our names (= HF's names), and the tokenizer.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import torch

from bert_pl.io import tokenization
from bert_pl.errors import UserError
from bert_pl.model.bert import BertConfig, read_json_config
from bert_pl.model.heads import HEADS, head_of, head_of_folder, task_heads

log = logging.getLogger(__name__)

# Tensors that exist in other formats but are derived in ours (tied decoder, position-id buffers, optimizer slots).
_DROP = re.compile(r"(position_ids|cls\.predictions\.decoder\.(weight|bias)|adam_[mv]|global_step)$")


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


@dataclass
class Checkpoint:
    config: BertConfig
    state_dict: Dict[str, torch.Tensor]
    tokenizer_json: Optional[str]
    source: str
    kind: str  # "bert-pl", "huggingface", "tensorflow"
    info: dict = field(default_factory=dict)  # head, labels, ... from bert-pl / HF configs

    @property
    def head(self) -> str:
        return head_of(self.state_dict.keys(), self.info)


def _fix_names(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """HF variants -> our names: add the `bert.` prefix to bare encoder keys, old gamma/beta LayerNorm names."""
    out = {}
    for k, v in sd.items():
        if _DROP.search(k):
            continue
        if k.startswith(("embeddings.", "encoder.", "pooler.")):
            k = "bert." + k
        k = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", k)
        k = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", k)
        out[k] = v
    return out


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors and truncated zips come in many types
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}); the file is corrupted, truncated or not a "
                              f"weights-only checkpoint: re-create or re-download it") from None


def _load_ours(path: Path) -> Checkpoint:
    ckpt = _torch_load(path)
    info = ckpt.get("bert_pl") if isinstance(ckpt, dict) else None
    if not info:
        raise CheckpointError(f"{path}: not a bert-pl checkpoint (no 'bert_pl' entry); pass a checkpoint written by "
                              f"train.py/finetune.py, or a Hugging Face / Google folder")
    sd = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    extra = {k: v for k, v in info.items() if k not in ("config", "tokenizer")}
    return Checkpoint(BertConfig.from_dict(info["config"]), _fix_names(sd), info.get("tokenizer"), str(path),
                      "bert-pl", extra)


def _tokenizer_json_from_folder(folder: Path) -> Optional[str]:
    try:
        return tokenization.load(folder).to_str()
    except FileNotFoundError:
        return None


def _load_hf(folder: Path) -> Checkpoint:
    config_path = folder / "config.json"
    raw_cfg = read_json_config(config_path)
    if raw_cfg.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{config_path}: model_type={raw_cfg.get('model_type')!r}; only BERT is supported")
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        weights = folder / "model.safetensors"
        try:
            sd = load_file(str(weights))
        except Exception as e:
            raise CheckpointError(f"{weights}: cannot be read ({e}); the file is corrupted or truncated: "
                                  f"re-download it") from None
    elif (folder / "pytorch_model.bin").is_file():
        sd = _torch_load(folder / "pytorch_model.bin")
    else:
        if (folder / "model.onnx").is_file():  # an ONNX export carries config.json too, but no weights to train
            raise CheckpointError(f"{folder} is an ONNX export: bert_pl.load and predict.py run it; to train or "
                                  f"export again, use the checkpoint it was exported from (bert_pl.json's source)")
        raise CheckpointError(f"{folder}: has config.json but no model.safetensors or pytorch_model.bin")
    info = {"architectures": list(raw_cfg.get("architectures") or [])}
    marked = head_of_folder(folder)  # a folder another library reads as more than its config.json says
    if marked is not None:
        info["head"] = marked.name
        info.update(marked.folder_info(folder) if marked.folder_info else {})
    if "id2label" in raw_cfg and HEADS[head_of(sd.keys(), info)].takes_labels:
        info["labels"] = [raw_cfg["id2label"][str(i)] for i in range(len(raw_cfg["id2label"]))]
    if raw_cfg.get("problem_type") in _HF_PROBLEM_TYPES.values():
        info["problem_type"] = {v: k for k, v in _HF_PROBLEM_TYPES.items()}[raw_cfg["problem_type"]]
    return Checkpoint(BertConfig.from_dict(raw_cfg), _fix_names(sd), _tokenizer_json_from_folder(folder),
                      str(folder), "huggingface", info)


def tf_name_to_ours(name: str) -> Optional[str]:
    """Google's TF variable name -> ours (None for optimizer slots and other non-weights)."""
    if _DROP.search(name):
        return None
    special = {
        "cls/predictions/output_bias": "cls.predictions.bias",
        "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
        "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
        "output_weights": "classifier.weight",  # run_classifier.py
        "output_bias": "classifier.bias",
        "cls/squad/output_weights": "qa_outputs.weight",  # run_squad.py
        "cls/squad/output_bias": "qa_outputs.bias",
    }
    if name in special:
        return special[name]
    name = re.sub(r"layer_(\d+)", r"layer.\1", name).replace("/", ".")
    name = re.sub(r"\.(kernel|gamma)$", ".weight", name)
    name = re.sub(r"\.beta$", ".bias", name)
    if name.endswith("_embeddings"):
        name += ".weight"
    return name


def _load_tf(folder: Path) -> Checkpoint:
    try:
        import tensorflow as tf
    except ImportError:
        raise CheckpointError(f"{folder} is a Google TensorFlow checkpoint; reading it needs TensorFlow: "
                              f"pip install 'bert-pl[tf]' (or: pip install tensorflow-cpu)") from None
    index = sorted(folder.glob("*.ckpt*.index")) or sorted(folder.glob("*.index"))
    prefix = str(index[0])[: -len(".index")]
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:
        raise CheckpointError(f"{prefix}: cannot be read by TensorFlow ({str(e).splitlines()[0][:200]}); the "
                              f"checkpoint is corrupted or incomplete") from None
    sd = {}
    for name in reader.get_variable_to_shape_map():
        ours = tf_name_to_ours(name)
        if ours is None:
            continue
        value = torch.from_numpy(reader.get_tensor(name).copy())
        if name.endswith("/kernel"):  # TF dense kernels are (in, out); torch Linear weights are (out, in)
            value = value.t().contiguous()
        sd[ours] = value
    return Checkpoint(BertConfig.from_json_file(folder / "bert_config.json"), sd, _tokenizer_json_from_folder(folder),
                      str(folder), "tensorflow")


_HUB_FILES = ["config.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "tokenizer.json",
              "tokenizer_config.json"]


def _hub_id(spec: str) -> bool:
    """`org/name`, or a bare legacy name such as `bert-base-uncased` (the hub still serves those)."""
    return bool(re.fullmatch(r"[\w.-]+(/[\w.-]+)?", spec)) and not spec.startswith(".") and ".." not in spec \
        and not spec.endswith((".ckpt", ".pt", ".bin", ".safetensors", ".json"))  # a file name, not a model name


def _fetch_hub(repo_id: str, key: str = "pretrained") -> Path:
    from bert_pl.io.hub import require_online

    cached = require_online(f"{key}={repo_id!r} is no local file or folder, so it", f"{key}=/path/to/a/local/"
                            "folder (Hugging Face or Google format, e.g. one downloaded with `huggingface-cli "
                            "download`) or a bert-pl run folder/.ckpt", repo_id=repo_id, allow_patterns=_HUB_FILES)
    if cached is not None:  # offline, and already in the local hub cache
        return cached
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES))
    except RepositoryNotFoundError:
        raise CheckpointError(f"{key}={repo_id}: no such local file or folder, and no model {repo_id!r} on the "
                              f"Hugging Face hub (or it is private: set HF_TOKEN); check the name") from None
    except (HfHubHTTPError, OSError) as e:
        raise CheckpointError(f"{key}={repo_id}: downloading it from the Hugging Face hub failed "
                              f"({str(e).splitlines()[0][:200]}); retry, or pass a local folder") from None


def _local_spec(pretrained: str, key: str = "pretrained") -> str:
    """A file:// URL as its local path; any other URL is refused in one line (checkpoints are read from disk)."""
    if "://" not in pretrained:
        return pretrained
    if pretrained.startswith("file://"):
        from fsspec.core import url_to_fs

        return url_to_fs(pretrained)[1]
    raise CheckpointError(f"{key}={pretrained}: checkpoints are read from local files only; copy it to a local "
                          f"path first (e.g. fsspec, `aws s3 cp`, `gcloud storage cp`) and pass that path")


def resolve(pretrained, key: str = "pretrained") -> Checkpoint:
    """Load any supported checkpoint; the last one read is kept, since every entry point reads it twice
    (config, then weights). `key`: the setting that named it, for messages (pretrained=, model=)."""
    from bert_pl.io import runs

    pretrained = runs.expand(_local_spec(str(pretrained), key))
    path = Path(pretrained).expanduser()
    stamp = path.stat().st_mtime_ns if path.exists() else None
    return _resolve_cached(pretrained, stamp, key)


@functools.lru_cache(maxsize=1)
def _resolve_cached(pretrained: str, stamp, key: str = "pretrained") -> Checkpoint:
    path = Path(pretrained).expanduser()
    if path.is_file():
        ckpt = _load_ours(path)
    elif path.is_dir():
        if (path / "config.json").is_file():
            ckpt = _load_hf(path)
        elif (path / "bert_config.json").is_file() and list(path.glob("*.index")):
            ckpt = _load_tf(path)
        elif list(path.glob("*.ckpt")) or (path / "checkpoints" / "last.ckpt").is_file():
            last = path / "last.ckpt" if (path / "last.ckpt").is_file() else path / "checkpoints" / "last.ckpt"
            if not last.is_file():
                raise CheckpointError(f"{path}: several .ckpt files and no last.ckpt; pass one file")
            ckpt = _load_ours(last)
        else:
            raise CheckpointError(
                f"{path}: no recognisable checkpoint: expected config.json + model.safetensors/pytorch_model.bin "
                f"(Hugging Face), bert_config.json + bert_model.ckpt.index (Google), or a bert-pl .ckpt")
    elif _hub_id(str(pretrained)) and not os.path.lexists(path):
        ckpt = _load_hf(_fetch_hub(str(pretrained), key))
    else:
        from bert_pl.io.missing import why_missing

        raise CheckpointError(f"{key}={pretrained} {why_missing(path)}: pass a bert-pl run folder or .ckpt, a "
                              f"Hugging Face or Google folder, or a hub id (online)")
    _check_consistent(ckpt)
    return ckpt


def _check_consistent(ckpt: Checkpoint) -> None:
    """Config sizes vs weight shapes, and tokenizer size vs embeddings, named precisely."""
    cfg, sd = ckpt.config, ckpt.state_dict
    emb = sd.get("bert.embeddings.word_embeddings.weight")
    if emb is None:
        raise CheckpointError(f"{ckpt.source}: no word embeddings (bert.embeddings.word_embeddings) in the weights")
    expected = {
        "bert.embeddings.word_embeddings.weight": (cfg.vocab_size, cfg.hidden_size),
        "bert.embeddings.position_embeddings.weight": (cfg.max_position_embeddings, cfg.hidden_size),
        "bert.encoder.layer.0.intermediate.dense.weight": (cfg.intermediate_size, cfg.hidden_size),
    }
    for key, shape in expected.items():
        if key in sd and tuple(sd[key].shape) != shape:
            raise CheckpointError(f"{ckpt.source}: the config says {key} is {shape} but the weights hold "
                                  f"{tuple(sd[key].shape)}; the config does not belong to these weights")
    layers = {int(m.group(1)) for k in sd for m in [re.match(r"bert\.encoder\.layer\.(\d+)\.", k)] if m}
    if layers and max(layers) + 1 != cfg.num_hidden_layers:
        raise CheckpointError(f"{ckpt.source}: the config says {cfg.num_hidden_layers} layers but the weights hold "
                              f"{max(layers) + 1}")
    if ckpt.tokenizer_json:
        n = tokenization.from_json_string(ckpt.tokenizer_json).get_vocab_size()
        if n > emb.shape[0]:
            raise CheckpointError(f"{ckpt.source}: the vocabulary has {n} tokens but the embeddings only "
                                  f"{emb.shape[0]} rows; the vocab file does not belong to this checkpoint")


RUNTIME_KEYS = (*BertConfig.FAST_PATH_KEYS, "hidden_dropout_prob", "attention_probs_dropout_prob")


def config_for(pretrained, overrides: Optional[dict] = None) -> BertConfig:
    """The checkpoint's architecture, with run-time settings (fast paths, dropout) taken from `overrides`."""
    cfg = resolve(pretrained).config.to_dict()
    for k in RUNTIME_KEYS:
        if overrides and overrides.get(k) is not None:
            cfg[k] = overrides[k]
    return BertConfig.from_dict(cfg)


def load_into(model: torch.nn.Module, pretrained, ckpt: Optional[Checkpoint] = None) -> Optional[str]:
    """Copy a checkpoint's weights into `model` (any head). New heads are initialised and listed in one line;
    weights the model has no place for are listed too. Returns the checkpoint's tokenizer JSON (or None)."""
    ckpt = ckpt or resolve(pretrained)
    own = model.state_dict()
    sd = dict(ckpt.state_dict)
    for key, value in list(sd.items()):
        if key in own and own[key].shape != value.shape:
            if key.endswith("word_embeddings.weight") or key == "cls.predictions.bias":
                raise CheckpointError(f"{ckpt.source}: {key} has shape {tuple(value.shape)} but the model expects "
                                      f"{tuple(own[key].shape)}: build the model from the checkpoint's config")
            if key.startswith(tuple(h.weight_prefix for h in task_heads() if h.weight_prefix)):
                log.info("%s: %s has shape %s, the task needs %s: re-initialised", ckpt.source, key,
                         tuple(value.shape), tuple(own[key].shape))
                del sd[key]
                continue
            raise CheckpointError(f"{ckpt.source}: {key} has shape {tuple(value.shape)}, the model expects "
                                  f"{tuple(own[key].shape)}")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing:
        log.info("%s: newly initialised (not in the checkpoint): %s", ckpt.source, _summarise(missing))
    if unexpected:
        log.info("%s: not used by this model: %s", ckpt.source, _summarise(unexpected))
    encoder_missing = [k for k in missing if k.startswith("bert.") and ".pooler." not in k]
    if encoder_missing:
        raise CheckpointError(f"{ckpt.source}: encoder weights missing from the checkpoint: "
                              f"{_summarise(encoder_missing)}")
    return ckpt.tokenizer_json


def _summarise(keys) -> str:
    keys = sorted(keys)
    prefixes = sorted({k.rsplit(".", 1)[0] for k in keys})
    return ", ".join(prefixes[:12]) + (f" (+{len(prefixes) - 12} more)" if len(prefixes) > 12 else "")


# -- writing -----------------------------------------------------------------------------------------------------
_HF_PROBLEM_TYPES = {"single_label": "single_label_classification", "regression": "regression",
                     "multi_label": "multi_label_classification"}


def hf_config(cfg: BertConfig, head: str, labels=None, problem_type: Optional[str] = None) -> dict:
    d = {k: v for k, v in cfg.to_dict().items() if k not in (*BertConfig.FAST_PATH_KEYS, "layer_norm_position")}
    d.update(model_type="bert", pad_token_id=0, position_embedding_type="absolute")
    d["architectures"] = [HEADS[head].hf_architecture]
    if HEADS[head].takes_labels and labels is not None:
        d["id2label"] = {str(i): str(lab) for i, lab in enumerate(labels)}
        d["label2id"] = {str(lab): i for i, lab in enumerate(labels)}
        d["num_labels"] = len(labels)
        problem_type = problem_type or ("regression" if len(labels) == 1 else None)
        if problem_type:
            d["problem_type"] = _HF_PROBLEM_TYPES[problem_type]
    return d


def save_huggingface(ckpt: Checkpoint, out_dir) -> Path:
    """A folder that transformers' from_pretrained loads with no missing or unexpected keys, tokenizer included."""
    from safetensors.torch import save_file

    if ckpt.config.layer_norm_position != "post":
        raise CheckpointError(f"{ckpt.source}: a {ckpt.config.layer_norm_position}-LayerNorm model has no Hugging "
                              f"Face BERT equivalent (BertModel is post-LN and would load these weights silently "
                              f"wrong); export it with --format onnx or --format ours instead")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head = ckpt.head
    sd = {k: v.detach().contiguous().clone() for k, v in ckpt.state_dict.items()}
    labels = ckpt.info.get("labels")
    if HEADS[head].takes_labels and labels is None:
        labels = [str(i) for i in range(sd[HEADS[head].weight_prefix + "weight"].shape[0])]
    config = hf_config(ckpt.config, head, labels, ckpt.info.get("problem_type"))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    if ckpt.tokenizer_json:
        tok = tokenization.from_json_string(ckpt.tokenizer_json)
        tokenization.save(tok, out)
        specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]"}
        (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
        (out / "tokenizer_config.json").write_text(json.dumps(
            {"do_lower_case": tokenization.lowercase_of(tok), "tokenizer_class": "BertTokenizer",
             "model_max_length": ckpt.config.max_position_embeddings, **specials}, indent=2))
    return out


def save_ours(ckpt: Checkpoint, path) -> Path:
    """A bert-pl .ckpt (weights + config + tokenizer) usable as `pretrained=`; not a training-resume checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": {"model." + k: v for k, v in ckpt.state_dict.items()},
               "bert_pl": {**ckpt.info, "config": ckpt.config.to_dict(), "head": ckpt.head,
                           "tokenizer": ckpt.tokenizer_json}}
    from bert_pl.io.atomic import atomic_torch_save

    atomic_torch_save(payload, path)
    return path
