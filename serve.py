"""Serve a trained model over HTTP: POST /predict, GET /health, GET /info; concurrent requests batched together.

    python serve.py model=outputs/finetune/mrpc/runs/latest port=8080
    python serve.py model=latest:train port=0 max_batch_size=64 max_wait_ms=10

Settings and their defaults: conf/serve.yaml (`python serve.py --help`); bert_pl/cli/serve.py reads them; the API,
errors and batching: docs/serving.md.
"""
from bert_pl.cli.serve import main

if __name__ == "__main__":
    main()
