"""Run a trained model on new text: every head (classification, QA, fill-mask for pretraining checkpoints).

    python predict.py model=outputs/finetune/mrpc/runs/latest input=pairs.tsv output=preds.jsonl
    python predict.py model=latest:finetune/mrpc input=- <<< $'The cat sat.\tA cat was sitting.'
    python predict.py model=outputs/train/runs/latest/checkpoints/last.ckpt text="Paris is the [MASK] of France."

Settings and their defaults: conf/predict.yaml (`python predict.py --help`); bert_pl/cli/predict.py reads them.
"""
from bert_pl.cli.predict import main

if __name__ == "__main__":
    main()
