"""`python -m bert_pl.export SRC DST [--format hf|onnx|ours]`: the export command (bert_pl/cli/export.py), kept at
this path because it is the documented way to run it."""
from bert_pl.cli.export import main

if __name__ == "__main__":
    main()
