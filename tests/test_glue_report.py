"""The GLUE report over a synthetic sweep folder, its CLI and callback, and the glue_all experiment config."""
import json
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import OmegaConf

from bert_pl.tasks import glue_report as gr

CONF = Path(__file__).resolve().parent.parent / "conf"
NINE = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]


def make_job(sweep: Path, job: str, task: str, lr: float, value, dev: dict, files=(), seed: int = 42,
             metric: str = "acc") -> Path:
    folder = sweep / job
    (folder / ".hydra").mkdir(parents=True)
    for name in files:
        (folder / "submission").mkdir(exist_ok=True)
        (folder / "submission" / name).write_text(f"index\tprediction\n0\t{name} from job {job}\n1\tx\n")
    results = {"task": task, "seed": seed, "lr": lr, "overrides": [f"task={task}", f"optimizer.lr={lr}"],
               "best": {"metric": metric, "value": value, "epoch": 2, "checkpoint": str(folder / "best.ckpt")},
               "dev": dev}
    (folder / "results.json").write_text(json.dumps(results))
    return folder


@pytest.fixture
def sweep(tmp_path):
    """Jobs 0-14 of a GLUE sweep; SST-2 and QNLI were not run, and WNLI's best run wrote no submission file."""
    s = tmp_path / "sweep"
    mnli = ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"]
    make_job(s, "0", "mnli", 5e-5, 0.840, {"dev_matched": {"acc": 0.840}, "dev_mismatched": {"acc": 0.845}}, mnli)
    make_job(s, "1", "mnli", 4e-5, 0.846, {"dev_matched": {"acc": 0.846}, "dev_mismatched": {"acc": 0.838}}, mnli)
    make_job(s, "2", "mnli", 3e-5, 0.830, {"dev_matched": {"acc": 0.830}, "dev_mismatched": {"acc": 0.850}}, mnli)
    make_job(s, "3", "qqp", 5e-5, 0.700, {"dev": {"acc": 0.90, "f1": 0.700}}, ["QQP.tsv"], metric="f1")
    make_job(s, "4", "qqp", 2e-5, 0.712, {"dev": {"acc": 0.89, "f1": 0.712}}, ["QQP.tsv"], metric="f1", seed=7)
    (s / "5" / ".hydra").mkdir(parents=True)  # crashed: no results.json
    make_job(s, "6", "cola", 3e-5, 0.552, {"dev": {"mcc": 0.552}}, ["CoLA.tsv"], metric="mcc")
    make_job(s, "7", "cola", 2e-5, None, {}, metric="mcc")  # no best epoch
    # STS-B is selected by Pearson (best.value) but reported by Spearman: job 8 wins though job 11's Spearman is higher
    make_job(s, "8", "stsb", 5e-5, 0.880, {"dev": {"pearson": 0.880, "spearman": 0.870}}, ["STS-B.tsv"],
             metric="pearson")
    make_job(s, "11", "stsb", 4e-5, 0.875, {"dev": {"pearson": 0.875, "spearman": 0.890}}, ["STS-B.tsv"],
             metric="pearson")
    # a tie: the first job (9, not "10" which sorts first as text) wins
    make_job(s, "9", "rte", 3e-5, 0.664, {"dev": {"acc": 0.664}}, ["RTE.tsv"])
    make_job(s, "10", "rte", 2e-5, 0.664, {"dev": {"acc": 0.664}}, ["RTE.tsv"])
    make_job(s, "12", "wnli", 2e-5, 0.563, {"dev": {"acc": 0.563}})
    make_job(s, "13", "mrpc", 2e-5, 0.889, {"dev": {"acc": 0.85, "f1": 0.889}}, ["MRPC.tsv"], metric="f1")
    make_job(s, "14", "mrpc", 5e-5, float("nan"), {"dev": {"acc": 0.5, "f1": 0.99}}, ["MRPC.tsv"], metric="f1")
    return s


BEST_JOBS = {"mnli": "1", "qqp": "4", "cola": "6", "stsb": "8", "rte": "9", "wnli": "12", "mrpc": "13"}
EXPECTED_TABLE = {"MNLI-m": 84.6, "MNLI-mm": 83.8, "QQP F1": 71.2, "QNLI acc": None, "SST-2 acc": None,
                  "CoLA MCC": 55.2, "STS-B Spearman": 87.0, "MRPC F1": 88.9, "RTE acc": 66.4, "WNLI acc": 56.3}
EXPECTED_AVERAGE = 100 * (0.846 + 0.838 + 0.712 + 0.552 + 0.870 + 0.889 + 0.664) / 7  # no QNLI, SST-2; no WNLI
EXPECTED_MISSING = ["QNLI.tsv", "SST-2.tsv", "WNLI.tsv"]  # in Table 1 order


def test_best_run_per_task(sweep):
    s = gr.collect(sweep)
    assert s.crashed == ["5"] and not s.unreadable
    assert [r.job for r in s.runs] == ["0", "1", "2", "3", "4", "6", "7", "8", "9", "10", "11", "12", "13", "14"]
    assert {t: r.job for t, r in gr.select_best(s.runs).items()} == BEST_JOBS


def test_table_and_average(sweep):
    best = gr.select_best(gr.collect(sweep).runs)
    values = gr.table_values(best)
    for column, expected in EXPECTED_TABLE.items():
        assert values[column] == (None if expected is None else pytest.approx(expected)), column
    average, used = gr.paper_average(values)
    assert average == pytest.approx(EXPECTED_AVERAGE)
    assert "WNLI acc" not in used and len(used) == 7


def test_average_reproduces_the_papers_table_1():
    cols = [c for c, *_ in gr.COLUMNS]
    base = dict(zip(cols, [84.6, 83.4, 71.2, 90.5, 93.5, 52.1, 85.8, 88.9, 66.4, 65.1]))
    large = dict(zip(cols, [86.7, 85.9, 72.1, 92.7, 94.9, 60.5, 86.5, 89.3, 70.1, 65.1]))
    assert round(gr.paper_average(base)[0], 1) == 79.6
    assert round(gr.paper_average(large)[0], 1) == 82.1


def test_report_files_agree_and_zip_holds_the_best_runs_files(sweep, capsys):
    assert gr.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    md = (sweep / "glue_report.md").read_text()
    report = json.loads((sweep / "glue_report.json").read_text())
    assert md in out

    table = report["table"]
    for column, expected in EXPECTED_TABLE.items():
        assert table[column] == expected, column
    assert table["Average"] == round(EXPECTED_AVERAGE, 1)
    assert report["average"]["partial"] and report["missing_tasks"] == ["qnli", "sst2"]

    # the md row shows the json's numbers
    header, _, row = [line for line in md.splitlines() if line.startswith("|")][:3]
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["MNLI-(m/mm)"] == f"{table['MNLI-m']:.1f}/{table['MNLI-mm']:.1f}"
    for column in EXPECTED_TABLE:
        if column not in ("MNLI-m", "MNLI-mm"):
            assert cells[column] == ("-" if table[column] is None else f"{table[column]:.1f}"), column
    assert cells["Average"] == f"{table['Average']:.1f}"

    for task, job in BEST_JOBS.items():
        entry = report["tasks"][task]
        assert entry["job"] == job and entry["status"] == "ok"
        assert f"| {gr.DISPLAY[task]} | {entry['metric']} {entry['value']:.4f} | {entry['lr']:g} | {entry['seed']} " \
               f"| 2 | {job} |" in md
    assert report["tasks"]["mnli"]["runs"] == 3 and report["tasks"]["sst2"]["status"] == "missing"
    assert report["tasks"]["cola"]["runs_without_value"] == ["7"]
    assert report["problems"]["crashed"] == ["5"] and report["problems"]["without_value"] == ["7", "14"]
    assert "no results.json): 5" in md and "without a best value" in md

    assert report["submission"]["missing"] == EXPECTED_MISSING
    assert "Missing** (the GLUE server needs all 11): QNLI.tsv, SST-2.tsv, WNLI.tsv." in md
    with zipfile.ZipFile(sweep / "glue_submission.zip") as z:
        names = z.namelist()
        assert sorted(names) == sorted(set(gr.ALL_SUBMISSION_FILES) - set(EXPECTED_MISSING))
        task_of = {name: t for t, files in gr.SUBMISSION_FILES.items() for name in files}
        for name in names:
            expected = (sweep / BEST_JOBS[task_of[name]] / "submission" / name).read_bytes()
            assert z.read(name) == expected, name
    assert not list(sweep.glob(".*.tmp"))
    chart = sweep / "glue_report.png"
    assert chart.read_bytes()[:4] == b"\x89PNG" and "![GLUE dev scores](glue_report.png)" in md


def test_a_chart_that_fails_is_one_warning_and_the_report_is_still_written(sweep, monkeypatch, caplog):
    from bert_pl.training import plots

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(plots, "glue_chart", broken)
    assert gr.main([str(sweep)]) == 0
    assert (sweep / "glue_report.md").is_file() and not (sweep / "glue_report.png").exists()
    assert "glue_report.png" not in (sweep / "glue_report.md").read_text()
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "glue_report.png was not drawn (RuntimeError: no fonts)"]


def test_callback_and_degenerate_sweeps(sweep, tmp_path, capsys):
    gr.GlueReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert "| 84.6/83.8 |" in capsys.readouterr().out
    assert (sweep / "glue_submission.zip").is_file()

    # after each job: in a sweep only (Hydra skips on_multirun_end once any job has failed)
    (sweep / "glue_report.md").unlink()
    job_cfg = {"hydra": {"mode": RunMode.RUN, "sweep": {"dir": str(sweep)}}}
    gr.GlueReport().on_job_end(OmegaConf.create(job_cfg), job_return=None)
    assert not (sweep / "glue_report.md").exists()
    job_cfg["hydra"]["mode"] = RunMode.MULTIRUN
    gr.GlueReport().on_job_end(OmegaConf.create(job_cfg), job_return=None)
    assert (sweep / "glue_report.md").is_file()

    empty = tmp_path / "empty"
    (empty / "0").mkdir(parents=True)
    (empty / "1").mkdir()
    (empty / "1" / "results.json").write_text("{not json")
    assert gr.main([str(empty)]) == 1
    report = json.loads((empty / "glue_report.json").read_text())
    assert report["problems"]["crashed"] == ["0"] and list(report["problems"]["unreadable"]) == ["1"]
    assert report["table"]["Average"] is None and report["submission"]["missing"] == gr.ALL_SUBMISSION_FILES
    with zipfile.ZipFile(empty / "glue_submission.zip") as z:
        assert z.namelist() == []
    with pytest.raises(SystemExit):
        gr.main([str(tmp_path / "absent")])


def test_submission_names_match_the_task_registry():
    from bert_pl.tasks.glue import TASKS

    registry = {name: sorted(f for _, f in t.test.values()) for name, t in TASKS.items() if name != "ax"}
    assert registry == {t: sorted(files) for t, files in gr.SUBMISSION_FILES.items()}
    assert len(gr.ALL_SUBMISSION_FILES) == 11


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="finetune", overrides=overrides, return_hydra_config=True)


def test_glue_all_experiment_composes():
    cfg = _compose(["experiment=glue_all", "pretrained=x"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = cfg.hydra.sweeper.params
    assert sorted(params["task"].split(",")) == sorted(NINE)
    assert all((CONF / "task" / f"{t}.yaml").is_file() for t in NINE)
    assert params["optimizer.lr"] == "5.0e-5,4.0e-5,3.0e-5,2.0e-5"
    assert str(params["seed"]) == "42"
    assert get_class(cfg.hydra.callbacks.glue_report._target_) is gr.GlueReport
    assert cfg.data.batch_size == 32 and cfg.trainer.max_epochs == 3
    # every job must land in the one sweep folder the report reads, whatever its task
    other = _compose(["experiment=glue_all", "pretrained=x", "task=rte"])
    dirs = [OmegaConf.to_container(c.hydra.sweep, resolve=False)["dir"] for c in (cfg, other)]
    assert dirs[0] == dirs[1] and "task" not in dirs[0]
    GlobalHydra.instance().clear()
