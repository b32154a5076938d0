"""Silent data faults in every task reader: a number or list where text is expected and a column named twice are
one-line errors naming the file, the row and the key (text classification: tests/test_text_classification.py;
SQuAD's unanswerable dev answers: tests/test_squad.py)."""
import json

import pytest

from bert_pl.tasks.base import TaskDataError


def _error(task) -> str:
    with pytest.raises(TaskDataError) as e:
        task.prepare()
    assert "\n" not in str(e.value)
    return str(e.value)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("field, value, message", [
    ("context", 12345, "line 2: 'context' holds a number (12345), not a text"),
    ("choices", ["fine", 7], "line 2: 'choices[1]' holds a number (7), not a text"),
    ("choices", ["fine", ["a", "b"]], "line 2: 'choices[1]' holds a list (['a', 'b']), not a text"),
])
def test_multiple_choice_text_fields_must_be_text(field, value, message, tmp_path, minilm_tokenizer):
    from bert_pl.tasks.multiple_choice import MultipleChoiceTask

    rows = [{"context": f"A man sits {i}.", "choices": ["He stands.", "He eats."], "label": i % 2} for i in range(3)]
    train = _jsonl(tmp_path / "train.jsonl", rows)
    rows[1][field] = value
    dev = _jsonl(tmp_path / "dev.jsonl", rows)
    task = MultipleChoiceTask(train_file=str(train), validation_file=str(dev))
    task.set_tokenizer(minilm_tokenizer)
    assert f"{dev}: {message}" in _error(task)


def test_multiple_choice_csv_with_a_column_named_twice(tmp_path, minilm_tokenizer):
    from bert_pl.tasks.multiple_choice import MultipleChoiceTask

    (tmp_path / "train.csv").write_text("context,ending0,ending1,label,context\na,b,c,0,d\n")
    task = MultipleChoiceTask(train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "train.csv"))
    task.set_tokenizer(minilm_tokenizer)
    assert "train.csv: the header names column 'context' twice (columns 1 and 5)" in _error(task)


def test_token_classification_json_lines(tmp_path, minilm_tokenizer):
    from bert_pl.tasks.token_classification import TokenClassificationTask

    good = _jsonl(tmp_path / "train.jsonl", [{"tokens": ["John", "lives"], "tags": ["B-PER", "O"]}] * 2)

    def error(line: str) -> str:
        (tmp_path / "dev.jsonl").write_text('{"tokens": ["Mary"], "tags": ["B-PER"]}\n' + line + "\n")
        task = TokenClassificationTask(train_file=str(good), validation_file=str(tmp_path / "dev.jsonl"))
        task.set_tokenizer(minilm_tokenizer)
        return _error(task)

    message = error('{"tokens": [12345], "tags": ["O"]}')
    assert "dev.jsonl" in message and "2" in message and "'tokens' must be a list of strings" in message, message
    assert "dev.jsonl: line 2: key 'tokens' appears twice in one object" in error(
        '{"tokens": ["a"], "tags": ["O"], "tokens": ["b"]}')


def test_glue_tsv_with_a_column_named_twice(tmp_path):
    from bert_pl.tasks.glue import get_task, read_tsv

    path = tmp_path / "dev.tsv"
    path.write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\t#1 String\n1\t1\t2\ta\tb\tc\n")
    with pytest.raises(TaskDataError, match="dev.tsv: the header names column '#1 String' twice \\(columns 4 and 6\\)"):
        read_tsv(path, get_task("mrpc"), "dev")
