"""Model cards for exported folders: a README.md the Hugging Face Hub reads (YAML metadata: library, base model,
datasets, language, license, metrics, model-index with the dev results, pipeline tag) and people read (what the
model is, its labels, how it was trained, the command that made it, a warning when the run looks untrained)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import yaml  # PyYAML: Hydra's own dependency

# GLUE metric names as the Hub's metrics (evaluate) call them
HUB_METRICS = {"acc": "accuracy", "mcc": "matthews_correlation", "exact_match": "exact_match", "f1": "f1",
               "pearson": "pearsonr", "spearman": "spearmanr"}


def run_results(src: str) -> Optional[dict]:
    """results.json of the fine-tuning run a checkpoint came from (a run folder, or <run>/checkpoints/x.ckpt)."""
    from bert_pl.io import runs

    path = Path(runs.expand(src))
    for folder in (path, path.parent, path.parent.parent):
        if (folder / "results.json").is_file():
            return json.loads((folder / "results.json").read_text())
    return None


def _base_model(pretrained: Optional[str]) -> Optional[str]:
    """The base model as the Hub links it: a hub id (org/name), not a local path."""
    if not pretrained or pretrained.startswith(("/", ".", "~")) or Path(pretrained).exists():
        return None
    return pretrained if pretrained.count("/") == 1 else None


def metadata(ckpt, results: Optional[dict], family_metadata: dict, license: str) -> dict:
    """The card's YAML metadata (the Hub's model card fields)."""
    results = results or {}
    dataset = results.get("dataset") or {}
    meta = {"library_name": "bert-pl", "license": license, "tags": ["bert", "bert-pl", ckpt.head]}
    if _base_model(results.get("pretrained")):
        meta["base_model"] = _base_model(results.get("pretrained"))
    if dataset.get("type"):
        meta["datasets"] = [dataset["type"]]
    if dataset.get("language"):
        meta["language"] = [dataset["language"]]
    meta.update(family_metadata)
    dev = (results.get("dev") or {}).get("dev") or {}
    numbers = {k: v for k, v in dev.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        meta["metrics"] = sorted({HUB_METRICS.get(k, k) for k in numbers})
        task = {"type": family_metadata["pipeline_tag"]} if family_metadata.get("pipeline_tag") else {}
        data = {"name": dataset.get("name") or results.get("task"), "type": dataset.get("type") or results.get("task"),
                "split": "validation", **({"config": dataset["config"]} if dataset.get("config") else {})}
        meta["model-index"] = [{"name": results.get("task") or ckpt.head, "results": [{
            "task": task, "dataset": data,
            "metrics": [{"type": HUB_METRICS.get(k, k), "value": round(float(v), 4), "name": f"dev {k}"}
                        for k, v in numbers.items()]}]}]
    return meta


def model_card(ckpt, results: Optional[dict], family, license: str = "apache-2.0") -> str:
    """README.md for an exported folder: YAML metadata, then the card. `family`: the head's Predictor class (its
    pipeline tag and example inputs)."""
    meta = metadata(ckpt, results, family.card_metadata(ckpt.info), license)
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# BERT ({ckpt.head})", ""]
    if results and results.get("degenerate"):
        lines += [f"> **Warning: this model looks untrained** ({results.get('degenerate_reason')}): its dev "
                  f"predictions are a constant predictor's, so its outputs carry no information. Fine-tune it again "
                  f"(another learning rate, more epochs or another base checkpoint) before using it.", ""]
    lines += [f"Exported by bert-pl from `{ckpt.source}`.", "",
              f"- Architecture: {ckpt.config.num_hidden_layers} layers, hidden {ckpt.config.hidden_size}, "
              f"{ckpt.config.num_attention_heads} heads, vocabulary {ckpt.config.vocab_size}"]
    if ckpt.info.get("labels"):
        lines.append(f"- Labels (in output order): {', '.join(map(str, ckpt.info['labels']))}")
    if results:
        best = results.get("best") or {}
        lines += [f"- Task: {results.get('task')}", f"- Fine-tuned from: `{results.get('pretrained')}`",
                  f"- Hyperparameters: lr {results.get('lr')}, batch size {results.get('batch_size')}, "
                  f"epochs {results.get('max_epochs')}, seed {results.get('seed')}",
                  f"- Best dev {best.get('metric')}: {best.get('value')} (epoch {best.get('epoch')})", "",
                  "## Dev metrics", "", "```", json.dumps(results.get("dev"), indent=2), "```", "",
                  "## The command that made it", "", "```",
                  "python finetune.py " + " ".join(results.get("overrides") or []), "```"]
    use = "fill_mask" if family.default_mode == "fill_mask" else family.default_mode
    lines += ["", "## Use", "", "```python", "import bert_pl", "", 'model = bert_pl.load("PATH_TO_THIS_FOLDER")',
              f"model.{use}({family.example_inputs[0]!r})", "```"]
    return "\n".join(lines) + "\n"
