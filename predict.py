"""Run a trained model on new text: every head (classification, QA, fill-mask for pretraining checkpoints).

    python predict.py model=outputs/finetune/mrpc/runs/latest input=pairs.tsv output=preds.jsonl
    python predict.py model=latest:finetune/mrpc input=- <<< $'The cat sat.\tA cat was sitting.'
    python predict.py model=outputs/train/runs/latest/checkpoints/last.ckpt text="Paris is the [MASK] of France."

Settings and their defaults: conf/predict.yaml (key=value arguments).
"""
import sys

from bert_pl.training import runner


@runner.entry_point
def main(cfg):
    from bert_pl.inference.model import run_predict

    return run_predict(cfg)


if __name__ == "__main__":
    main(runner.key_value_config(runner.CONF_DIR / "predict.yaml", sys.argv[1:]))
