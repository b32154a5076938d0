"""Remote and mirrored paths: checkpoints on any fsspec URL, and a hub gate that follows huggingface_hub's settings
(HF_HUB_OFFLINE, HF_ENDPOINT mirrors, proxies) and lets cached repos load offline."""
import http.server
import importlib.util
import socket
import threading
import time
import uuid

import fsspec
import pytest
import torch

from bert_pl.io import checkpoints, hub
from bert_pl.io.atomic import AtomicCheckpointIO, CheckpointSaveError, atomic_torch_save, atomic_write_text
from bert_pl.io.hub import OfflineError

# -- checkpoints on fsspec URLs ------------------------------------------------------------------------------------


@pytest.fixture
def memory_dir():
    root = f"/test-{uuid.uuid4().hex}"  # the memory filesystem is one per process: a folder of its own per test
    yield "memory://" + root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(params=["memory", "file"])
def ckpt_dir(request, memory_dir, tmp_path):
    return memory_dir + "/ckpts" if request.param == "memory" else (tmp_path / "ckpts").as_uri()


def listing(url):
    fs, path = fsspec.core.url_to_fs(url)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))


def test_save_load_remove_on_a_url(ckpt_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io = AtomicCheckpointIO()
    url = ckpt_dir + "/sub/last.ckpt"
    io.save_checkpoint({"w": torch.arange(6.0).view(2, 3), "step": 1}, url)
    io.save_checkpoint({"w": torch.ones(2, 3), "step": 2}, url)  # over an existing one
    loaded = io.load_checkpoint(url)
    assert loaded["step"] == 2 and torch.equal(loaded["w"], torch.ones(2, 3))
    assert listing(ckpt_dir + "/sub") == ["last.ckpt"]  # no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == (["ckpts"] if ckpt_dir.startswith("file:") else [])
    io.remove_checkpoint(url)
    assert not fsspec.core.url_to_fs(url)[0].exists(fsspec.core.url_to_fs(url)[1])
    with pytest.raises(FileNotFoundError):
        io.load_checkpoint(url)


def test_a_file_url_is_the_local_file(tmp_path):
    atomic_torch_save({"x": torch.tensor([1, 2])}, (tmp_path / "a" / "last.ckpt").as_uri())
    assert torch.equal(torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)["x"], torch.tensor([1, 2]))
    atomic_write_text((tmp_path / "a" / "results.json").as_uri(), "{}")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["last.ckpt", "results.json"]


def test_text_files_on_a_url(memory_dir):
    atomic_write_text(memory_dir + "/run/results.json", '{"acc": 1.0}')
    assert fsspec.open(memory_dir + "/run/results.json", "rt").open().read() == '{"acc": 1.0}'
    assert listing(memory_dir + "/run") == ["results.json"]


def test_a_failed_rename_keeps_the_previous_file_and_no_temporary(memory_dir, monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    url = memory_dir + "/last.ckpt"
    atomic_torch_save({"step": 1}, url)

    def broken_mv(self, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(MemoryFileSystem, "mv", broken_mv)
    with pytest.raises(CheckpointSaveError, match=r"saving memory://.*last.ckpt failed .*Input/output error"):
        atomic_torch_save({"step": 2}, url)
    assert AtomicCheckpointIO().load_checkpoint(url) == {"step": 1}
    assert listing(memory_dir) == ["last.ckpt"]


def test_a_filesystem_without_rename_is_written_plainly(memory_dir, monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    def no_mv(self, *args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(MemoryFileSystem, "mv", no_mv)
    atomic_torch_save({"step": 3}, memory_dir + "/last.ckpt")
    assert AtomicCheckpointIO().load_checkpoint(memory_dir + "/last.ckpt") == {"step": 3}
    assert listing(memory_dir) == ["last.ckpt"]


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs would try to reach S3")
def test_s3_without_s3fs_is_one_line_and_no_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointSaveError, match="s3://bucket/ckpts/last.ckpt: cannot open .*s3fs") as e:
        atomic_torch_save({"x": 1}, "s3://bucket/ckpts/last.ckpt")
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # the old bug: a local folder named "s3:"


def test_trainer_writes_a_loadable_last_ckpt_on_a_url(memory_dir, tmp_path):
    """(memory:// only: Lightning's ModelCheckpoint itself turns a file:// dirpath into `<cwd>/file:/...`.)"""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    ckpt_dir = memory_dir + "/ckpts"
    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)), batch_size=2)
    model = Tiny()
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, plugins=[AtomicCheckpointIO()],
                         callbacks=[ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=1, save_top_k=1,
                                                    save_last=True)])
    trainer.fit(model, data)
    files = listing(ckpt_dir)
    assert "last.ckpt" in files and len(files) == 2 and not any(f.endswith(".tmp") for f in files), files  # top-1 kept
    last = AtomicCheckpointIO().load_checkpoint(ckpt_dir + "/last.ckpt")
    assert last["global_step"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(last["state_dict"][key], value)
    resumed = pl.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         plugins=[AtomicCheckpointIO()])
    resumed.fit(Tiny(), data, ckpt_path=ckpt_dir + "/last.ckpt")  # Lightning reads it back through the plugin
    assert resumed.global_step == 4


def test_pretrained_as_a_file_url(tmp_path):
    from bert_pl.model.bert import BertConfig, BertForPreTraining

    cfg = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=32)
    path = checkpoints.save_ours(checkpoints.Checkpoint(cfg, BertForPreTraining(cfg).state_dict(), None, "t",
                                                        "bert-pl"), tmp_path / "tiny.ckpt")
    assert checkpoints.resolve(path.as_uri()).config.hidden_size == 16
    with pytest.raises(checkpoints.CheckpointError, match="s3://b/tiny.ckpt: .*copy it to a local path") as e:
        checkpoints.resolve("s3://b/tiny.ckpt")
    assert "\n" not in str(e.value)


# -- the hub gate --------------------------------------------------------------------------------------------------
@pytest.fixture
def online(monkeypatch):
    """No offline variable and no proxy from the test environment; the gate's memory cleared before and after."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT", "NO_PROXY",
                "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    hub.hub_reachable.cache_clear()
    yield monkeypatch
    hub.hub_reachable.cache_clear()


@pytest.fixture
def local_server():
    """An HTTP server on 127.0.0.1 answering every request 200 and recording its request line (a mirror, or a
    proxy: a proxied request line carries the full URL)."""
    lines = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            lines.append(self.requestline)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", lines
    server.shutdown()
    server.server_close()


def test_an_unreachable_mirror_is_named_quickly(online):
    online.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens, refused at once
    start = time.monotonic()
    assert not hub.hub_reachable()
    with pytest.raises(OfflineError) as e:
        hub.require_online("the hub dataset org/data", "data.train_file=...")
    assert time.monotonic() - start < 5
    message = str(e.value)
    assert "not reachable (offline): no answer from http://127.0.0.1:9 (HF_ENDPOINT)" in message
    assert message.endswith("; pass data.train_file=...") and "\n" not in message


def test_a_mirror_that_answers_is_reachable(online, local_server):
    url, lines = local_server
    online.setenv("HF_ENDPOINT", url + "/")
    assert hub.hub_reachable() and hub.require_online("x", "y") is None
    assert lines == ["HEAD / HTTP/1.1"]  # asked once, then remembered
    assert hub.hub_reachable() and len(lines) == 1


def test_the_gate_goes_through_the_proxy(online, local_server):
    proxy, lines = local_server
    online.setenv("HF_ENDPOINT", "http://hub.invalid")  # resolvable only by the proxy
    online.setenv("HTTP_PROXY", proxy)
    assert hub.hub_reachable()
    assert lines == ["HEAD http://hub.invalid/ HTTP/1.1"]


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_offline_variables_decide_without_the_network(online, variable):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    online.setattr(hub, "_answers", no_network)
    online.setattr(socket, "create_connection", no_network)
    online.setenv(variable, "1")
    assert not hub.hub_reachable()
    with pytest.raises(OfflineError, match=rf"not reachable \(offline\): {variable}=1 is set; pass data_dir=DIR$"):
        hub.require_online("GLUE", "data_dir=DIR")
    online.setenv("HF_HUB_OFFLINE", "0")  # huggingface_hub's own reading: HF_HUB_OFFLINE wins over TRANSFORMERS_
    if variable == "TRANSFORMERS_OFFLINE":
        online.setattr(hub, "_answers", lambda endpoint: True)
        assert hub.hub_reachable()


def fake_hub_cache(root, repo_id, files, repo_type="models"):
    """huggingface_hub's cache layout: {type}--org--name/refs/main -> snapshots/<commit>/files."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"{repo_type}--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, write in files.items():
        write(snapshot / name)
    return snapshot


def test_a_cached_model_loads_offline(online, tmp_path):
    from huggingface_hub import constants

    from bert_pl.model.bert import BertConfig, BertForPreTraining

    cache = tmp_path / "hub"
    online.setenv("HF_HUB_CACHE", str(cache))
    online.setattr(constants, "HF_HUB_CACHE", str(cache))  # huggingface_hub read the variable at import
    online.setenv("HF_HUB_OFFLINE", "1")
    online.setattr(hub, "_answers", lambda *a: pytest.fail("the network was used"))
    cfg = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=32)
    model = BertForPreTraining(cfg)
    source = checkpoints.save_huggingface(checkpoints.Checkpoint(cfg, model.state_dict(), None, "t", "bert-pl"),
                                          tmp_path / "hf")
    copy = lambda name: lambda dest: dest.write_bytes((source / name).read_bytes())  # noqa: E731
    snapshot = fake_hub_cache(cache, "org/tiny-bert", {n: copy(n) for n in ("config.json", "model.safetensors")})
    checkpoints._resolve_cached.cache_clear()
    try:
        ckpt = checkpoints.resolve("org/tiny-bert")
        assert ckpt.source == str(snapshot) and ckpt.config.hidden_size == 16
        assert torch.equal(ckpt.state_dict["bert.embeddings.word_embeddings.weight"],
                           model.state_dict()["bert.embeddings.word_embeddings.weight"])
        with pytest.raises(OfflineError, match=r"pretrained='org/other' .*must come from the Hugging Face hub, which "
                                               r"is not reachable \(offline\): HF_HUB_OFFLINE=1 is set and nothing "
                                               r"usable is cached; pass pretrained=/path/to/a/local/folder"):
            checkpoints.resolve("org/other")
    finally:
        checkpoints._resolve_cached.cache_clear()


def test_a_cached_dataset_passes_the_gate_offline(online, tmp_path):
    import datasets.config

    online.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    online.setenv("HF_DATASETS_OFFLINE", "1")
    prepared = tmp_path / "org___my_set" / "default" / "0.0.0" / "abc123"  # where `datasets` keeps a loaded dataset
    prepared.mkdir(parents=True)
    assert hub.require_online("the hub dataset org/MySet", "data.train_file=...", repo_id="org/MySet",
                              repo_type="dataset") == tmp_path / "org___my_set"
    with pytest.raises(OfflineError, match="nothing usable is cached; pass data.train_file="):
        hub.require_online("the hub dataset org/absent", "data.train_file=...", repo_id="org/absent",
                           repo_type="dataset")
