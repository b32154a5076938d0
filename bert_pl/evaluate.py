"""`python -m bert_pl.evaluate squad DEV.json PREDICTIONS.json`: the official SQuAD evaluation command
(bert_pl/cli/evaluate.py), kept at this path because it is the documented way to run it."""
from bert_pl.cli.evaluate import main

if __name__ == "__main__":
    main()
