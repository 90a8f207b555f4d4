"""A reproduce target over several synthetic data seeds: each seed's own data and results, findings counted as
"holds in k/N seeds" (all rows and rows reaching 0.85), each cell's mean, min and max across seeds."""

from __future__ import annotations

import csv
import json

import pytest

from advdf.papers import reproduce
from advdf.report.findings import Finding
from advdf.report.render import Lines, Reproduced
from advdf.report.seeds import cell_spread, finding_counts
from tests.helpers.scripts import TINY_DATA


def _finding(holds: bool | None, scope: str = "all") -> Finding:
    return Finding("jpeg70_ge_jpeg90", "JPEG70 ≥ JPEG90", "numbers", holds, {}, scope)


def test_finding_counts_and_cell_spread():
    counts = finding_counts({0: [_finding(True), _finding(None, "strong")],
                             1: [_finding(False), _finding(True, "strong")],
                             2: [_finding(True), _finding(None, "strong")]})
    by = {e["scope"]: e for e in counts}
    assert (by["all"]["holds"], by["all"]["judged"], by["all"]["seeds"]) == (2, 3, 3)
    assert (by["strong"]["holds"], by["strong"]["judged"]) == (1, 1)
    assert by["strong"]["per_seed"] == {0: None, 1: True, 2: None}

    def cells(v):
        return {"t": ([{"detector": "a", "metric": "acc", "ours": v, "paper": 0.9, "n": 10, "lo": 0.1},
                       {"detector": "b", "metric": "acc", "ours": None, "paper": 0.9}], ["detector"])}

    spread = cell_spread({0: cells(0.2), 1: cells(0.6), 2: cells(None)})
    assert len(spread) == 1  # b was never computed
    (e,) = spread
    assert e["cell"] == "a / acc" and e["n_seeds"] == 2 and e["values"] == {0: 0.2, 1: 0.6}
    assert (e["mean"], e["min"], e["max"]) == (pytest.approx(0.4), 0.2, 0.6)


@pytest.mark.parametrize("seeds, match", [("0,x", "non-negative integers"), ("1,1", "more than once"),
                                          ("0,-1", "non-negative integers"), ("0,,1", "non-negative integers")])
def test_a_bad_seed_list_is_one_error_line(seeds, match, monkeypatch, capsys):
    monkeypatch.setitem(reproduce.TABLES, "kra", lambda *a, **k: pytest.fail("ran with a bad seed list"))
    assert reproduce.main(["kra", "--data-seeds", seeds]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data-seeds") and match in err and err.count("\n") == 1


def test_real_data_with_data_seeds_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setitem(reproduce.TABLES, "table1", lambda *a, **k: pytest.fail("ran on real data"))
    assert reproduce.main(["table1", "--scale", "paper", "--data-seeds", "0,1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data-seeds varies the synthetic data's seed") and "real data" in err
    assert reproduce.main(["table1", "--data-seeds", "0,1", "data.root=/elsewhere"]) == 2
    assert "drop ['data.root=/elsewhere']" in capsys.readouterr().err


def test_each_seed_runs_with_its_own_data_and_results_and_a_summary_is_written(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    calls = []

    def target(scale, overrides, results_suffix=""):
        calls.append((overrides, results_suffix))
        seed = int(next(o for o in overrides if o.startswith("data.synthetic.seed=")).split("=")[1])
        say = Lines()
        say(f"seed {seed} table")
        cells = [{"detector": "a", "ours": 0.5 + 0.1 * seed, "paper": 0.9}]
        return Reproduced(tmp_path / "results" / f"kra_{scale}{results_suffix}", str(say),
                          findings=(_finding(seed == 0), _finding(None, "strong")), tables={"t1": (cells, ["detector"])})

    monkeypatch.setitem(reproduce.TABLES, "kra", target)
    assert reproduce.main(["kra", "--data-seeds", "0,2", "seed=3"]) == 0
    # seed 0 keeps the default data root and results directory (an earlier run is reused)
    assert calls == [(["seed=3", "data.synthetic.seed=0"], ""),
                     (["seed=3", "data.synthetic.seed=2", "data.root=${paths.data_dir}/ffpp_synthetic_seed2"], "_seed2")]
    out = capsys.readouterr().out
    assert "seed 0 table" in out and "seed 2 table" in out
    assert "    all rows: holds in 1/2 seeds" in out
    assert "    rows with clean acc ≥ 0.85: holds in 0/2 seeds (not judged in 2" in out
    assert "| a | 0.600 [0.500, 0.700] | 2/2 | 0.500 | 0.700 |" in out
    summary = tmp_path / "results" / "kra_smoke_seeds"
    rows = list(csv.DictReader(open(summary / "summary.csv")))
    assert rows == [{"table": "t1", "cell": "a", "n_seeds": "2", "mean": "0.6000", "min": "0.5000", "max": "0.7000",
                     "seed0": "0.5000", "seed2": "0.7000"}]
    data = json.loads((summary / "summary.json").read_text())
    assert data["seeds"] == [0, 2] and data["findings"][0]["holds"] == 1
    assert (summary / "summary.md").read_text().startswith("reproduce-kra (smoke), data seeds 0, 2")


TINY_PLAN = ["~reproduce.detectors", "+reproduce.detectors={tiny_cnn:[],mesonet:[]}", "reproduce.paper_only=[mesonet]",
             "~reproduce.seed001", "+reproduce.seed001={tiny_cnn:[]}", "model.input_size=32", "trainer.max_epochs=1",
             "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none", *TINY_DATA]


@pytest.mark.slow
def test_tiny_table1_over_two_data_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert reproduce.main(["table1", "--data-seeds", "0,1", *TINY_PLAN]) == 0
    out = capsys.readouterr().out
    results = tmp_path / "results"
    assert {p.name for p in results.iterdir()} == {"table1_smoke", "table1_smoke_seed1", "table1_smoke_seeds"}
    assert (tmp_path / "data" / "ffpp_synthetic_seed1").is_dir()
    runs = sorted(p.name for p in (tmp_path / "checkpoints" / "ffpp_synthetic").iterdir())
    # two data seeds x (base, AugMix); the paper-scale-only MesoNet is never trained
    assert len(runs) == 4 and not any(r.startswith("mesonet") for r in runs)
    assert len({r.split("-")[0] for r in runs}) == 2  # the same prefix, another data identity digest
    for name in ("table1_smoke", "table1_smoke_seed1"):
        cells = {(c["detector"], c["variant"]): c for c in csv.DictReader(open(results / name / "table1.csv"))}
        tiny = cells["tiny_cnn", "base"]
        assert tiny["n"] and tiny["lo"] and tiny["hi"] and float(tiny["lo"]) <= float(tiny["ours"]) <= float(tiny["hi"])
        assert tiny["below_threshold"] == str(float(tiny["ours"]) < 0.85)
        assert cells["mesonet", "base"]["paper_only"] == "True" and cells["mesonet", "base"]["ours"] == ""
    assert "| mesonet | paper scale only / 0.774 | paper scale only / 0.807 |" in out
    assert "- AugMix training keeps clean accuracy" in out and "holds in" in out and "/2 seeds" in out
    summary = list(csv.DictReader(open(results / "table1_smoke_seeds" / "summary.csv")))
    acc = next(r for r in summary if r["table"] == "table1" and r["cell"] == "tiny_cnn / base / acc")
    assert acc["n_seeds"] == "2" and float(acc["min"]) <= float(acc["mean"]) <= float(acc["max"])
    data = json.loads((results / "table1_smoke_seeds" / "summary.json").read_text())
    assert {e["scope"] for e in data["findings"]} == {"all", "strong"} and all(e["seeds"] == 2 for e in data["findings"])
