"""The HTTP server of `serve.py` / `bert-pl-serve`: a trained model behind FastAPI + uvicorn, concurrent requests
batched together.

    POST /predict  {"inputs": [...]} (+ "mode": predict | fill_mask | embed, and that mode's options)
                   -> {"predictions": [...]}, what `bert_pl.load(model).predict(inputs)` returns (fill_mask, embed)
    GET  /health   -> {"status": "ok"}
    GET  /info     -> the model: head, task, labels, max_seq_length, pooling, example inputs, limits, batching

Requests are read and checked on the event loop (JSON, shape, limits); their inputs go to one thread that owns the
model (`Batcher`): it takes what is queued, waits up to `max_wait_ms` for more, and runs up to `max_batch_size`
inputs of requests with the same mode and options in one call of the runtime. A bad input that only the head's
Predictor can see fails that call; the batch's requests are then run one by one, so the others still get their
predictions and the bad one its own 422. Every error is a JSON {"error": "..."} with a 4xx status naming the problem
(a 500 only for a fault of the server itself, logged with its traceback). uvicorn drains on SIGTERM: it stops
accepting, finishes the requests in flight, then the batcher stops and the process exits 0.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import queue
import signal
import socket
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import numpy as np

from bert_pl.inference.model import POOLINGS, Model, layer_list, positive_int
from bert_pl.inference.predict_files import MODES
from bert_pl.tasks.predictor import PredictError

log = logging.getLogger("bert_pl")

# The options each mode takes in a request besides "inputs" and "mode".
MODE_OPTIONS = {"predict": (), "fill_mask": ("top_k",), "embed": ("layers", "pooling", "normalize")}
_STOP = object()


class ApiError(Exception):
    """A request the server refuses: its HTTP status and the one-line message of its JSON body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 32    # inputs per call of the model, across requests
    max_wait_ms: float = 5.0    # how long the first queued request waits for others to batch with
    max_inputs: int = 256       # inputs per request
    max_chars: int = 20000      # characters of one input (all its texts together)

    @property
    def max_body_bytes(self) -> int:
        """A request body that large cannot hold a valid request (6 bytes per character: JSON's \\uXXXX escapes)."""
        return self.max_inputs * (self.max_chars * 6 + 256) + 4096


@dataclass
class Job:
    """One request's inputs, waiting for the model thread."""
    mode: str
    options: Tuple[Tuple[str, Any], ...]
    inputs: list
    future: Future = field(default_factory=Future)


# -- reading a request --------------------------------------------------------------------------------------------
def _kind(value) -> str:
    return {bool: "true/false", int: "a number", float: "a number", type(None): "null", dict: "an object",
            list: "a list", str: "a text"}.get(type(value), type(value).__name__)


def _texts(x, n: int) -> int:
    """Characters of input `n` (1-based), after checking that it is made of texts: a text, a list of texts (a pair,
    words), or an object whose values are texts or lists of texts (QA, multiple choice)."""
    def text(t: str) -> int:
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:  # JSON's "\ud800": a lone surrogate, which no tokenizer takes
            raise ApiError(422, f"input {n}: a text holds an unpaired surrogate (\\ud800-\\udfff escape); send "
                                f"valid Unicode") from None
        return len(t)

    def leaf(v, where):
        if isinstance(v, str):
            return text(v)
        if isinstance(v, list) and all(isinstance(t, str) for t in v):
            return sum(text(t) for t in v)
        raise ApiError(422, f"input {n}{where}: expected a text or a list of texts, got {_kind(v)}")

    if isinstance(x, str):
        return text(x)
    if isinstance(x, list):
        bad = next((t for t in x if not isinstance(t, str)), None)
        if bad is not None or not x:
            raise ApiError(422, f"input {n}: a list input holds texts (a pair, or words), got "
                                f"{'an empty list' if not x else 'a list holding ' + _kind(bad)}")
        return sum(text(t) for t in x)
    if isinstance(x, dict):
        if not x:
            raise ApiError(422, f"input {n}: an empty object; see GET /info's example_inputs")
        return sum(leaf(v, f" {k!r}") for k, v in x.items())
    raise ApiError(422, f"input {n}: expected a text, a list of texts or an object of texts (GET /info shows "
                        f"example_inputs), got {_kind(x)}")


def _options(mode: str, body: dict) -> Tuple[Tuple[str, Any], ...]:
    """The mode's options from the request, checked (top_k; layers, pooling, normalize), sorted by name."""
    given = {k: v for k, v in body.items() if k not in ("inputs", "mode")}
    unknown = [k for k in given if k not in MODE_OPTIONS[mode]]
    if unknown:
        takes = ", ".join(MODE_OPTIONS[mode]) or "no options"
        raise ApiError(422, f"unknown key {unknown[0]!r} for mode={mode}; a request has 'inputs', 'mode' and the "
                            f"mode's options ({takes})")
    options = {}
    for key, value in given.items():
        if key == "top_k":
            options[key] = positive_int("top_k", value)
        elif key == "layers":
            options[key] = tuple(layer_list(value if isinstance(value, list) else [value]))
        elif key == "pooling":
            if value not in POOLINGS:
                raise ApiError(422, f"pooling={value!r}: use {', '.join(POOLINGS)}")
            options[key] = value
        elif key == "normalize":
            if not isinstance(value, bool):
                raise ApiError(422, f"normalize={value!r}: use true or false")
            options[key] = value
    return tuple(sorted(options.items()))


def parse_request(raw: bytes, default_mode: str, limits: Limits) -> Job:
    """A POST /predict body as a Job, or ApiError naming what is wrong with it."""
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text; send JSON") from None
    except ValueError as e:
        raise ApiError(400, f"the request body is not valid JSON ({e}); send {{\"inputs\": [...]}}") from None
    except RecursionError:
        raise ApiError(400, "the request body nests JSON too deeply; send {\"inputs\": [...]}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body is {_kind(body)}; send a JSON object: {{\"inputs\": [...]}}")
    if "inputs" not in body:
        raise ApiError(422, f"no 'inputs' key; send {{\"inputs\": [...]}} (keys given: {sorted(body) or 'none'})")
    mode = body.get("mode", default_mode)
    if mode not in MODES:
        raise ApiError(422, f"mode={mode!r}: use one of {', '.join(MODES)} (default {default_mode})")
    options = _options(mode, body)
    inputs = body["inputs"]
    if isinstance(inputs, (str, dict)):  # one input, as Model.predict takes it
        inputs = [inputs]
    if not isinstance(inputs, list):
        raise ApiError(422, f"'inputs' is {_kind(inputs)}; give a list of inputs (or one text or object)")
    if not inputs:
        raise ApiError(422, "'inputs' is empty; give at least one input")
    if len(inputs) > limits.max_inputs:
        raise ApiError(413, f"{len(inputs)} inputs; a request takes at most max_inputs={limits.max_inputs}: split it")
    for n, x in enumerate(inputs, 1):
        if mode != "predict" and not isinstance(x, str):
            raise ApiError(422, f"input {n}: mode={mode} takes texts, got {_kind(x)}")
        chars = _texts(x, n)
        if chars > limits.max_chars:
            raise ApiError(413, f"input {n}: {chars} characters; an input takes at most max_chars={limits.max_chars}")
    return Job(mode, options, inputs)


def jsonable(value):
    """numpy results as JSON values (tuples as lists)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- the model thread ---------------------------------------------------------------------------------------------
class Batcher:
    """The one thread that runs the model: queued jobs with the same mode and options, up to max_batch_size inputs
    (a larger request runs alone), after waiting up to max_wait_ms from the first. `batch_sizes` keeps the number
    of inputs of each call (the last 10000)."""

    def __init__(self, model: Model, limits: Limits):
        self.model, self.limits = model, limits
        self.queue: "queue.Queue" = queue.Queue()
        self.batch_sizes: collections.deque = collections.deque(maxlen=10000)
        self.thread = threading.Thread(target=self._loop, name="bert-pl-model", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> Future:
        self.queue.put(job)
        return job.future

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self.queue.put(_STOP)
        self.thread.join()

    def run(self, mode: str, options: dict, inputs: list) -> list:
        self.batch_sizes.append(len(inputs))
        model = self.model
        if mode == "fill_mask":
            return model.fill_mask(inputs, **options)
        if mode == "embed":
            return list(model.embed(inputs, **options))
        return model.predict(inputs, progress=False)

    def _gather(self, first: Job, pending: collections.deque) -> Tuple[List[Job], bool]:
        """`first` and the queued jobs that batch with it; True when the stop sign came."""
        group, size = [first], len(first.inputs)
        deadline = time.monotonic() + self.limits.max_wait_ms / 1000
        while size < self.limits.max_batch_size:
            wait = deadline - time.monotonic()
            try:
                job = self.queue.get(timeout=wait) if wait > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return group, True
            if (job.mode, job.options) == (first.mode, first.options) \
                    and size + len(job.inputs) <= self.limits.max_batch_size:
                group.append(job)
                size += len(job.inputs)
            else:
                pending.append(job)  # next call
                if size + len(job.inputs) > self.limits.max_batch_size:
                    break
        return group, False

    def _loop(self) -> None:
        pending: collections.deque = collections.deque()
        stopping = False
        while True:
            if pending:
                first = pending.popleft()
            elif stopping:
                return
            else:
                first = self.queue.get()
                if first is _STOP:
                    return
            group, stop = self._gather(first, pending)
            stopping = stopping or stop
            self._run_group(group)

    def _run_group(self, group: List[Job]) -> None:
        first = group[0]
        try:
            results = self.run(first.mode, dict(first.options), [x for job in group for x in job.inputs])
        except Exception as e:  # noqa: BLE001 (each job gets its own answer below)
            if len(group) == 1:
                first.future.set_exception(e)
                return
            for job in group:  # which request was bad: each alone
                self._run_group([job])
            return
        start = 0
        for job in group:
            job.future.set_result(results[start:start + len(job.inputs)])
            start += len(job.inputs)


# -- the app ------------------------------------------------------------------------------------------------------
def _error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def info(model: Model, limits: Limits) -> dict:
    """GET /info: what the model is and takes."""
    predictor = model.predictor
    return jsonable({
        "source": str(model.source), "head": model.head, "task": predictor.pipeline_tag,  # the Hub's name of the task
        "mode": predictor.default_mode, "modes": list(MODES), "mode_options": MODE_OPTIONS,
        "labels": model.labels if model.labels else None, "problem_type": model.problem_type,
        "max_seq_length": model.max_seq_length, "embedding": predictor.embed_defaults(),
        "line_format": predictor.line_format,
        "example_inputs": predictor.example_inputs, "device": str(model.device), "onnx": model.is_onnx,
        "limits": {"max_inputs": limits.max_inputs, "max_chars": limits.max_chars,
                   "max_body_bytes": limits.max_body_bytes},
        "batching": {"max_batch_size": limits.max_batch_size, "max_wait_ms": limits.max_wait_ms},
    })


async def _read_body(request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body has {declared} bytes; at most {limit} (max_inputs x max_chars)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body has over {limit} bytes (max_inputs x max_chars)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model: Model, limits: Limits = Limits()):
    """The FastAPI app serving `model`; `app.state.batcher` is its model thread (started with the app)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    about = info(model, limits)

    @asynccontextmanager
    async def lifespan(app):
        app.state.batcher = Batcher(model, limits)
        try:
            yield
        finally:  # uvicorn has finished the requests in flight
            app.state.batcher.stop()

    app = FastAPI(title="bert-pl", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request, e):  # 404, 405: JSON like every other error
        return _error(e.status_code, f"{request.method} {request.url.path}: {e.detail}; routes: POST /predict, "
                                     f"GET /health, GET /info")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/info")
    async def get_info():
        return about

    async def predict(request):  # a plain Starlette route: the body is read and checked here, not by FastAPI
        try:
            job = parse_request(await _read_body(request, limits.max_body_bytes), about["mode"], limits)
            if job.mode == "predict":
                model.predictor.check(job.inputs)  # cheap, and keeps a bad request out of a batch
            results = await asyncio.wrap_future(app.state.batcher.submit(job))
        except ApiError as e:
            return _error(e.status, str(e))
        except PredictError as e:
            return _error(422, str(e))
        except Exception as e:  # noqa: BLE001 (a fault of the server, not of the request: logged)
            log.exception("POST /predict failed")
            return _error(500, f"internal error: {type(e).__name__}: {e}")
        try:
            payload = json.dumps({"predictions": jsonable(results)}, ensure_ascii=False, allow_nan=False)
        except ValueError as e:
            log.error("a prediction is not JSON: %s", e)
            return _error(500, f"internal error: the model's output is not finite ({e})")
        return Response(payload, media_type="application/json")

    app.add_route("/predict", predict, methods=["POST"])
    return app


# -- running it ---------------------------------------------------------------------------------------------------
def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), so that clients can connect as soon as the address is printed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise PredictError(f"host={host} port={port}: cannot listen there ({e.strerror}); choose another port "
                           f"(port=0 takes a free one)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(model: Model, host: str = "127.0.0.1", port: int = 8080, limits: Limits = Limits(),
          access_log: bool = True, log_level: str = "info") -> None:
    """Serve `model` until SIGTERM or Ctrl-C, which drain the requests in flight; returns then (exit code 0)."""
    import uvicorn

    sock = bind(host, port)
    host_shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(create_app(model, limits), log_level=log_level, access_log=access_log,
                            timeout_graceful_shutdown=None, lifespan="on")
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has drained: ours returns, so the exit code is 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    print(f"serving {model.source} ({model.head}) on http://{host_shown}:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
    print("stopped: the requests in flight were answered", file=sys.stderr, flush=True)
