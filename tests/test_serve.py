"""serve.py's HTTP server over real HTTP: every head of the registry answers POST /predict as `Model.predict` (or
fill_mask / embed, the head's default use) does on the same inputs, /info describes it, bad requests get a 4xx JSON
error and leave the server up, concurrent requests share calls of the model, and SIGTERM drains the requests in
flight before exit code 0. Servers run in this process (uvicorn in a thread, as serve.py runs it), one subprocess for
serve.py itself (SIGTERM)."""
import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from bert_pl.inference.model import load  # noqa: E402
from bert_pl.inference.server import Limits, bind, create_app, jsonable  # noqa: E402
from bert_pl.model.heads import HEADS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running(model, limits=Limits()):
    """The app serving `model` under uvicorn on a free port of 127.0.0.1 (a thread of this process): (port, app)."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    app = create_app(model, limits)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1], app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def request(port, method, path, body=None, headers=None):
    """(status, JSON answer) of one request; `body`: bytes as sent, or a value sent as JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    conn.request(method, path, body=body, headers=headers or {})
    res = conn.getresponse()
    status, data, kind = res.status, res.read(), res.getheader("content-type")
    conn.close()
    assert kind == "application/json", (status, kind, data[:200])
    return status, json.loads(data)


def expected(model, mode, inputs):
    """What the Python API answers, as JSON carries it."""
    out = {"predict": lambda: model.predict(inputs, progress=False), "fill_mask": lambda: model.fill_mask(inputs),
           "embed": lambda: list(model.embed(inputs))}[mode]()
    return json.loads(json.dumps(jsonable(out)))


@pytest.fixture(scope="module")
def pair_model(tiny_checkpoint):
    """A pair classifier (MRPC-like: the run was fine-tuned on pairs, so single texts are refused)."""
    path, _ = tiny_checkpoint("classification", info={"task": {"pairs": True, "max_seq_length": 32}})
    return load(path, batch_size=16)


@pytest.mark.parametrize("head", list(HEADS))
def test_every_head_answers_as_the_python_api_does(head, tiny_checkpoint):
    entry = HEADS[head]
    model = load(tiny_checkpoint(head)[0])
    predictor = entry.predictor_class()
    inputs, mode = predictor.example_inputs, predictor.default_mode
    with running(model) as (port, _):
        status, answer = request(port, "POST", "/predict", {"inputs": inputs})
        assert status == 200, answer
        assert answer == {"predictions": expected(model, mode, inputs)}
        if isinstance(inputs[0], (str, dict)):  # one bare input (a list is a list of inputs): a list of one result
            status, one = request(port, "POST", "/predict", {"inputs": inputs[0]})
            assert status == 200 and one["predictions"] == expected(model, mode, inputs[:1])
        assert request(port, "GET", "/health") == (200, {"status": "ok"})
        status, about = request(port, "GET", "/info")
    assert status == 200
    assert about["head"] == head and about["task"] == predictor.pipeline_tag and about["mode"] == mode
    assert about["max_seq_length"] == model.max_seq_length
    assert about["labels"] == (model.labels or None) and about["line_format"] == predictor.line_format
    assert about["example_inputs"] == json.loads(json.dumps(jsonable(predictor.example_inputs)))
    assert about["embedding"]["pooling"] == model.predictor.embed_defaults()["pooling"]


@pytest.mark.parametrize("problem_type,num_labels", [("regression", 1), ("multi_label", 3)])
def test_regression_and_multi_label_classifiers(problem_type, num_labels, tiny_checkpoint):
    model = load(tiny_checkpoint("classification", info={"problem_type": problem_type}, num_labels=num_labels)[0])
    inputs = ["The cat sat.", "Stocks fell sharply today."]
    with running(model) as (port, _):
        status, answer = request(port, "POST", "/predict", {"inputs": inputs})
    assert status == 200 and answer["predictions"] == expected(model, "predict", inputs)
    assert ("score" if problem_type == "regression" else "labels") in answer["predictions"][0]


def test_fill_mask_and_embed_modes_with_options(tiny_checkpoint):
    model = load(tiny_checkpoint("pretraining")[0])
    texts = ["Paris is the [MASK] of France."]
    with running(model) as (port, _):
        status, answer = request(port, "POST", "/predict", {"inputs": texts, "mode": "fill_mask", "top_k": 2})
        assert status == 200 and answer["predictions"] == json.loads(json.dumps(model.fill_mask(texts, top_k=2)))
        body = {"inputs": texts, "mode": "embed", "pooling": "mean", "layers": [-1, -2], "normalize": True}
        status, answer = request(port, "POST", "/predict", body)
    assert status == 200
    want = model.embed(texts, layers=[-1, -2], pooling="mean", normalize=True)
    np.testing.assert_allclose(np.array(answer["predictions"]), want, rtol=1e-6, atol=1e-7)


def bad_requests(limits):
    """(what is wrong, body bytes or JSON, expected status) for a pair classifier."""
    pair = ["The cat sat.", "A cat was sitting."]
    return [
        ("empty body", b"", 400), ("cut JSON", b'{"inputs": [', 400), ("not JSON", b"inputs=cat", 400),
        ("not UTF-8", b'{"inputs": ["\xff\xfe"]}', 400), ("a JSON list", b"[]", 400), ("a JSON text", b'"cat"', 400),
        ("JSON null", b"null", 400), ("a JSON number", b"12", 400), ("deep JSON", b"[" * 5000 + b"]" * 5000, 400),
        ("a lone surrogate", b'{"inputs": [["\\ud800 cat", "b"]]}', 422),
        ("no inputs key", {}, 422), ("misspelt key", {"input": [pair]}, 422), ("empty inputs", {"inputs": []}, 422),
        ("null inputs", {"inputs": None}, 422), ("number inputs", {"inputs": 5}, 422),
        ("true inputs", {"inputs": True}, 422), ("a number input", {"inputs": [5]}, 422),
        ("a null input", {"inputs": [None]}, 422), ("an empty list input", {"inputs": [[]]}, 422),
        ("a number in a pair", {"inputs": [["a", 1]]}, 422), ("an empty object input", {"inputs": [{}]}, 422),
        ("a number in an object", {"inputs": [{"question": 5, "context": "c"}]}, 422),
        ("nested lists", {"inputs": [[["a", "b"]]]}, 422),
        ("a single text for a pair model", {"inputs": ["The cat sat."]}, 422),
        ("one bare text for a pair model", {"inputs": "The cat sat."}, 422),
        ("three texts", {"inputs": [["a", "b", "c"]]}, 422),
        ("a QA input for a classifier", {"inputs": [{"question": "q", "context": "c"}]}, 422),
        ("too many inputs", {"inputs": [pair] * (limits.max_inputs + 1)}, 413),
        ("an oversize text", {"inputs": [["a" * (limits.max_chars + 1), "b"]]}, 413),
        ("an oversize pair", {"inputs": [["a" * limits.max_chars, "b"]]}, 413),
        ("an unknown mode", {"inputs": [pair], "mode": "classify"}, 422),
        ("a number mode", {"inputs": [pair], "mode": 3}, 422),
        ("fill_mask without an MLM head", {"inputs": ["Paris is the [MASK]."], "mode": "fill_mask"}, 422),
        ("top_k 0", {"inputs": ["a [MASK]."], "mode": "fill_mask", "top_k": 0}, 422),
        ("top_k a text", {"inputs": ["a [MASK]."], "mode": "fill_mask", "top_k": "5"}, 422),
        ("an unknown pooling", {"inputs": ["a"], "mode": "embed", "pooling": "median"}, 422),
        ("a layer past the model", {"inputs": ["a"], "mode": "embed", "layers": [99]}, 422),
        ("normalize a text", {"inputs": ["a"], "mode": "embed", "normalize": "yes"}, 422),
        ("pairs to embed", {"inputs": [pair], "mode": "embed"}, 422),
        ("an option of another mode", {"inputs": [pair], "top_k": 3}, 422),
        ("an unknown key", {"inputs": [pair], "temperature": 1}, 422),
        ("a body past the limit", b"{" + b" " * limits.max_body_bytes + b"}", 413),
    ]


def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_stays_up(pair_model):
    limits = Limits(max_inputs=8, max_chars=300)
    cases = bad_requests(limits)
    assert len(cases) >= 40 and len({what for what, _, _ in cases}) == len(cases)
    with running(pair_model, limits) as (port, _):
        for what, body, want in cases:
            status, answer = request(port, "POST", "/predict", body)
            assert status == want, (what, status, answer)
            assert set(answer) == {"error"} and answer["error"] and "\n" not in answer["error"], (what, answer)
            assert request(port, "GET", "/health")[0] == 200, what
        assert request(port, "GET", "/predict")[0] == 405 and request(port, "POST", "/classify", {})[0] == 404
        # the messages name the problem
        assert "input 1" in request(port, "POST", "/predict", {"inputs": ["The cat sat."]})[1]["error"]
        too_many = next(body for what, body, _ in cases if what == "too many inputs")
        assert "max_inputs=8" in request(port, "POST", "/predict", too_many)[1]["error"]
        status, answer = request(port, "POST", "/predict", {"inputs": [["The cat sat.", "A cat was sitting."]]})
        assert status == 200 and len(answer["predictions"]) == 1


def test_wrong_shape_for_span_tag_and_choice_heads(tiny_checkpoint):
    cases = {"span": [["a text"], [{"question": "q"}], [{"question": "", "context": "c"}]],
             "multiple_choice": [["a text"], [{"context": "c", "choices": []}], [{"context": "c"}]],
             "token_classification": [[{"text": "a"}], [[]]],
             "pretraining": [["no mask here"], [["a", "b"]]]}
    for head, bodies in cases.items():
        with running(load(tiny_checkpoint(head)[0])) as (port, _):
            for inputs in bodies:
                status, answer = request(port, "POST", "/predict", {"inputs": inputs})
                assert 400 <= status < 500 and answer["error"], (head, inputs, status, answer)
            assert request(port, "GET", "/health")[0] == 200


def test_concurrent_requests_share_model_calls_and_a_bad_one_fails_alone(pair_model):
    texts = [(f"Sentence number {i} is here.", f"And {'a longer ' * (i % 5)}sentence {i}.") for i in range(40)]
    limits = Limits(max_batch_size=16, max_wait_ms=200)
    single = {"inputs": ["a single text"]}  # refused by the pair model's check, before the queue
    three = {"inputs": [["a", "b", "c"]]}  # refused by the head's predict: inside a batch
    with running(pair_model, limits) as (port, app):
        with ThreadPoolExecutor(32) as pool:
            jobs = [pool.submit(request, port, "POST", "/predict", {"inputs": [list(t)]}) for t in texts]
            bad = [pool.submit(request, port, "POST", "/predict", b) for b in (single, three)]
            answers = [j.result() for j in jobs]
            bad = [b.result() for b in bad]
        sizes = list(app.state.batcher.batch_sizes)
    assert max(sizes) > 1 and max(sizes) <= limits.max_batch_size, sizes
    assert [s for s, _ in bad] == [422, 422], bad
    want = pair_model.predict(texts, progress=False)
    for (status, answer), w in zip(answers, want):
        assert status == 200
        got = answer["predictions"][0]
        assert got["label"] == w["label"]
        assert got["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)


def test_serve_py_drains_the_requests_in_flight_on_sigterm_and_exits_0(tiny_checkpoint):
    path, _ = tiny_checkpoint("classification", info={"task": {"pairs": True, "max_seq_length": 32}})
    # a long batch wait keeps the requests in flight when SIGTERM comes
    proc = subprocess.Popen([sys.executable, "serve.py", f"model={path}", "port=0", "max_wait_ms=1500",
                             "max_batch_size=64", "access_log=false"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = proc.stdout.readline()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(found.group(1))
        assert request(port, "GET", "/health")[0] == 200
        body = {"inputs": [["The cat sat.", "A cat was sitting."]] * 3}
        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(request, port, "POST", "/predict", body) for _ in range(4)]
            time.sleep(0.7)  # the requests are queued, waiting for the batch
            assert not any(j.done() for j in jobs)
            proc.send_signal(signal.SIGTERM)
            answers = [j.result() for j in jobs]
        assert all(s == 200 and len(a["predictions"]) == 3 for s, a in answers), answers
        assert proc.wait(60) == 0, proc.stderr.read()
        with pytest.raises(ConnectionRefusedError):
            request(port, "GET", "/health")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_settings_are_checked_in_one_line_before_the_model_is_read(capsys):
    import importlib

    from bert_pl.cli import standalone
    from bert_pl.errors import UserConfigError

    serve = importlib.import_module("bert_pl.cli.serve")  # bert_pl.cli.serve is also the console-script function
    for args, key in [(["port=70000"], "port="), (["max_wait_ms=-1"], "max_wait_ms="),
                      (["max_batch_size=0"], "max_batch_size="), (["bogus=1"], "bogus"),
                      (["access_log=maybe"], "access_log="), (["threads=two"], "threads=")]:
        with pytest.raises(UserConfigError, match=key):
            serve.compose(["model=x", *args])
    assert serve.compose(["model=x", "port=0", "threads="]).threads is None
    with pytest.raises(SystemExit) as stop:  # as the command line says it: one line, exit code 2
        serve.main(["model=x", "max_inputs=-5"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: max_inputs=-5") and "\n" not in err, err
    with pytest.raises(SystemExit) as stop:
        serve.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("serve.py: ") and all(f"\n{k}:" in text for k in standalone.register(serve.CONFIG))
