"""`python -m bert_pl.convert SRC DST`: the same command as `python -m bert_pl.export` (kept for existing scripts)."""
from bert_pl.export import main

if __name__ == "__main__":
    main()
