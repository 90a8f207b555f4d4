"""Seed 002's subjective test as a tool: a study built from cached adversarial sets, its server's refusals, a real
browser rating a whole set, and assess.py's one-line errors.

The sets are written through advdf's store API beside a small prepared frame tree (no training, no attack run), so
the file runs in seconds; ``make assess-demo`` goes through train.py and attack.py instead.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from advdf.assess.db import RatingsDB
from advdf.assess.server import ServerSettings, create_app
from advdf.assess.sources import open_set
from advdf.assess.study import ATTENTION, REFERENCE, Design, Study, build_study
from advdf.attacks.checks import perturbation_norms
from advdf.data.dataset import INDEX_COLUMNS, FrameDataset, read_index
from advdf.errors import AdversarialCheckError, ConfigError, DataError
from advdf.store.cache import AdversarialCache
from advdf.utils.io import file_sha256
from tests.helpers.browser import browser_missing, chrome, rate_set, start_evaluator
from tests.helpers.scripts import run_script

N, SIDE = 12, 32
ADMIN = "admin-token-for-tests-0123"
PGD = {"_target_": "advdf.attacks.PGD", "_partial_": True, "name": "pgd", "eps": "8/255"}
URN = {"_target_": "advdf.attacks.URN", "_partial_": True, "name": "urn", "eps": 10, "pixel_scale": 255}


def make_prepared(artifacts: Path) -> Path:
    """A prepared frame tree of N smooth random 32 px crops, with its index.csv."""
    prepared = artifacts / "data" / "prepared" / "synthetic_test-000000000000"
    (prepared / "crops").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(prepared / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        for i in range(N):
            small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            cv2.imwrite(str(prepared / "crops" / f"{i}.png"), cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC))
            writer.writerow({"path": f"crops/{i}.png", "mask_path": "", "video_id": f"v{i // 2}", "frame": i % 2,
                             "manipulation": "original" if i % 2 == 0 else "Deepfakes", "label": i % 2, "split": "test"})
    return prepared


def make_set(artifacts: Path, prepared: Path, attack: dict, delta: float, seed: int = 0) -> Path:
    """A complete cached set of ``attack`` on every frame: the clean image plus uniform noise of L-inf ``delta``, in
    two shards, with every field attack.py writes."""
    frames = FrameDataset(read_index(prepared), prepared, SIDE)
    x = torch.stack([frames[i]["image"] for i in range(N)])
    g = torch.Generator().manual_seed(seed)
    x_adv = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * delta).clamp(0, 1)
    key = {"attack": attack, "attack_version": 1, "seed": 0, "store_format": 2,
           "detector": {"name": "tiny_cnn", "weights_sha256": "0" * 64},
           "data": {"name": "synthetic", "split": "test", "input_size": SIDE, "rows": list(range(N)),
                    "index_sha256": file_sha256(prepared / "index.csv")}}
    cache = AdversarialCache.for_run(artifacts / "adv_cache" / "synthetic" / "tiny_cnn_32px_base-000000000000",
                                     attack["name"], key, rows=N, shard_size=8, batch_size=8)
    layout = cache.open()
    label = torch.tensor([i % 2 for i in range(N)])
    norms = perturbation_norms(x_adv, x)
    for i in range(layout.shards):
        s = layout.span(i)
        n = s.stop - s.start
        cache.write_shard(i, {"x_adv": x_adv[s], "position": torch.arange(s.start, s.stop),
                              "row": torch.arange(s.start, s.stop), "label": label[s].clone(), "video": label[s].clone(),
                              "success": torch.ones(n, dtype=torch.uint8), "grad_calls": torch.zeros(n),
                              "queries": torch.zeros(n), "clean_pred": label[s].clone(), "adv_pred": 1 - label[s],
                              "linf": norms["linf"][s], "l2": norms["l2"][s], "l0": norms["l0"][s],
                              "time_s": torch.zeros(n)})
    cache.write_summary({"n": N})
    return cache.directory


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    prepared = make_prepared(root)
    make_set(root, prepared, PGD, 8 / 255)
    make_set(root, prepared, URN, 10 / 255, seed=1)
    make_set(root, prepared, {**PGD, "name": "fgsm", "eps": "2/255"}, 8 / 255)  # beyond its recorded budget
    return root


DESIGN = Design(pairs_per_condition=6, pairs_per_set=5, attention_per_set=1, seed=0)


def _build(artifacts: Path, directory: Path, design: Design = DESIGN, names=("pgd", "urn")) -> dict:
    sources = {n.upper(): open_set(next((artifacts / "adv_cache").glob(f"*/*/{n}-*"))) for n in names}
    return build_study(directory, directory.name, sources, design, artifacts / "data", artifacts / "adv_cache")


@pytest.fixture(scope="module")
def built(artifacts, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("studies") / "s"
    _build(artifacts, directory)
    return directory


# --- building --------------------------------------------------------------------------------------------------
def test_study_sets_are_balanced_and_hold_one_attention_check_each(built):
    study = Study(built)
    cond = {p: study.pairs[p]["condition"] for p in study.pairs}
    assert [c["name"] for c in study.conditions] == ["PGD", "URN", REFERENCE]
    assert [len(s) for s in study.sets] == [6, 6, 6, 4]  # 18 test pairs in sets of 5 (the last shorter), +1 check
    for members in study.sets:
        assert sum(cond[p] == ATTENTION for p in members) == 1
        counts = [sum(cond[p] == c for p in members) for c in ("PGD", "URN", REFERENCE)]
        assert max(counts) - min(counts) <= 1, counts
    tested = [p for s in study.sets for p in s if cond[p] != ATTENTION]
    assert sorted(tested) == sorted(p for p in study.pairs if cond[p] != ATTENTION)  # every pair once
    assert {c: sum(v == c for v in cond.values()) for c in ("PGD", "URN", REFERENCE)} == dict.fromkeys(
        ("PGD", "URN", REFERENCE), 6)


def test_study_images_are_lossless_and_inside_each_budget(built):
    study = Study(built)
    budget = {"PGD": 8, "URN": 10}  # L-inf on 0-255; exported 8-bit images may round by half a level
    for pid, pair in study.pairs.items():
        ref, test = (cv2.imread(str(study.image(pid, w))).astype(int) for w in ("ref", "test"))
        diff = np.abs(ref - test).max()
        if pair["condition"] == REFERENCE:
            assert study.image(pid, "ref").read_bytes() == study.image(pid, "test").read_bytes()
            assert pair["psnr"] is None and pair["ssim"] == pytest.approx(1.0)
        elif pair["condition"] == ATTENTION:
            assert pair["psnr"] < 25  # obviously degraded
        else:
            assert 0 < diff <= budget[pair["condition"]] + 1
            assert pair["psnr"] > 25 and 0 < pair["ssim"] < 1
    pgd = [p for p in study.pairs.values() if p["condition"] == "PGD"]
    assert len({p["row"] for p in pgd}) == 6  # six distinct samples


def test_study_draws_depend_on_the_seed_only(artifacts, built, tmp_path):
    again = _build(artifacts, tmp_path / "again")
    other = _build(artifacts, tmp_path / "other", Design(pairs_per_condition=6, pairs_per_set=5, seed=1))
    rows = lambda s: [(p["condition"], p["row"]) for p in s["pairs"]]  # noqa: E731
    assert rows(again) == rows(Study(built).meta) and again["sets"] == Study(built).sets
    assert rows(other) != rows(again)


def test_a_set_beyond_its_recorded_budget_is_refused(artifacts, tmp_path):
    with pytest.raises(AdversarialCheckError, match=r"fgsm-\w+: perturbation L-inf .* exceeds eps 0.007843"):
        _build(artifacts, tmp_path / "bad", names=("fgsm",))


def test_bad_designs_are_refused(artifacts, tmp_path):
    with pytest.raises(ConfigError, match="pairs_per_set must be a positive integer"):
        Design(pairs_per_set=0)
    with pytest.raises(ConfigError, match="has 12 samples; design.pairs_per_condition=13"):
        _build(artifacts, tmp_path / "big", Design(pairs_per_condition=13))
    with pytest.raises(ConfigError, match="empty study"):
        build_study(tmp_path / "e", "e", {}, DESIGN, artifacts / "data", artifacts / "adv_cache")
    with pytest.raises(DataError, match="no study in"):
        Study(tmp_path / "nowhere")


# --- serving ---------------------------------------------------------------------------------------------------
@pytest.fixture
def served(built, tmp_path):
    directory = tmp_path / "study"
    shutil.copytree(built, directory)
    study = Study(directory)
    app = create_app(study, ServerSettings(base_path="/dcr", max_sets_per_evaluator=2, admin_token=ADMIN))
    return study, app.test_client()


def _start(client) -> str:
    r = client.post("/dcr/start")
    assert r.status_code == 303
    return r.headers["Location"]


def _item(client, page: str) -> str:
    html = client.get(page).get_data(as_text=True)
    found = re.findall(r'name="item" value="([^"]+)"', html)
    return found[0] if found else ""


def _ratings(study: Study) -> list[tuple]:
    with sqlite3.connect(study.db_path) as conn:
        return conn.execute("SELECT item, rating FROM ratings ORDER BY item").fetchall()


def test_server_refuses_bad_ratings(served):
    study, client = served
    page = _start(client)
    item = _item(client, page)
    for bad in ("0", "6", "3.5", "", "five"):
        r = client.post(page + "/rate", data={"item": item, "rating": bad})
        assert r.status_code == 400 and b"integer from 1 to 5" in r.data, bad
    r = client.post(page + "/rate", data={"item": "forged-id", "rating": "3"})
    assert r.status_code == 403 and b"not shown to this evaluator" in r.data
    other = _start(client)  # another evaluator's pair is forged too
    r = client.post(page + "/rate", data={"item": _item(client, other), "rating": "3"})
    assert r.status_code == 403
    assert _ratings(study) == []  # nothing refused was written
    assert client.post(page + "/rate", data={"item": item, "rating": "4"}).status_code == 303
    r = client.post(page + "/rate", data={"item": item, "rating": "2"})  # replayed
    assert r.status_code == 409 and b"already rated" in r.data
    assert [rating for _, rating in _ratings(study)] == [4]  # the first rating stands


def _rate_everything(client, page: str) -> int:
    done = 0
    while item := _item(client, page):
        assert client.post(page + "/rate", data={"item": item, "rating": "5"}).status_code == 303
        done += 1
    return done


def test_an_evaluator_gets_at_most_k_sets_and_is_refused_once_finished(served):
    study, client = served
    page = _start(client)
    first = _rate_everything(client, page)
    assert first == 6 and b"Rate another set" in client.get(page).data
    assert client.post(page + "/next").status_code == 303
    second = _rate_everything(client, page)
    assert second == 6 and b"All done" in client.get(page).data  # K = 2
    code = re.findall(r'id="code">(\w+)<', client.get(page).get_data(as_text=True))
    assert code and len(code[0]) == 8
    with sqlite3.connect(study.db_path) as conn:
        sets = [r[0] for r in conn.execute("SELECT set_index FROM assignments ORDER BY id")]
        item = conn.execute("SELECT item FROM items LIMIT 1").fetchone()[0]
    assert sets == [0, 1]  # two different sets, least-rated first
    r = client.post(page + "/rate", data={"item": item, "rating": "3"})
    assert r.status_code == 409 and b"has finished" in r.data
    assert client.post(page + "/next").status_code == 409
    assert len(_ratings(study)) == 12
    assert client.post("/dcr/e/not-a-token/rate", data={"item": item, "rating": "3"}).status_code == 404


def test_results_need_the_admin_token(served):
    study, client = served
    page = _start(client)
    client.post(page + "/rate", data={"item": _item(client, page), "rating": "2"})
    assert client.get("/dcr/admin/ratings.csv").status_code == 401
    assert client.get("/dcr/admin/ratings.csv", headers={"Authorization": "Bearer wrong"}).status_code == 403
    r = client.get("/dcr/admin/ratings.csv", headers={"Authorization": f"Bearer {ADMIN}"})
    rows = list(csv.DictReader(r.get_data(as_text=True).splitlines()))
    assert r.status_code == 200 and [(row["rating"], row["evaluator"]) for row in rows] == [("2", "1")]
    assert page.rsplit("/", 1)[1] not in r.get_data(as_text=True)  # evaluators' tokens never leave the server
    status = client.get("/dcr/admin/status.json", headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
    assert status["ratings"] == 1 and status["sets"] == 4


def test_pages_live_under_the_base_path_and_hide_the_reference(served):
    study, client = served
    page = _start(client)
    assert page.startswith("/dcr/e/")
    html = client.get(page).get_data(as_text=True)
    assert client.get(page.removeprefix("/dcr")).status_code == 200  # a proxy that strips the prefix
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 2 and all(s.startswith("/dcr/e/") for s in sources)
    assert not any(p in html for p in study.pairs)  # no pair id on the page
    assert all(client.get(s).mimetype == "image/png" for s in sources)
    assert client.get(page).headers["Referrer-Policy"] == "no-referrer"
    with sqlite3.connect(study.db_path) as conn:
        pair, swapped = conn.execute("SELECT pair, swapped FROM items WHERE position = 0").fetchone()
    left = client.get(sources[0]).data
    assert left == study.image(pair, "test" if swapped else "ref").read_bytes()


def test_each_rating_is_committed_when_answered(served):
    study, client = served
    page = _start(client)
    client.post(page + "/rate", data={"item": _item(client, page), "rating": "3"})
    with sqlite3.connect(study.db_path) as conn:  # another connection sees it at once: a crash now loses nothing
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT rating FROM ratings").fetchall() == [(3,)]


# --- a real browser --------------------------------------------------------------------------------------------
@pytest.fixture
def live(built, tmp_path):
    """The study served by waitress on a free port, under /dcr."""
    from waitress.server import create_server

    reason = browser_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    directory = tmp_path / "study"
    shutil.copytree(built, directory)
    study = Study(directory)
    app = create_app(study, ServerSettings(base_path="/dcr", max_sets_per_evaluator=1, admin_token=ADMIN))
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield study, f"http://127.0.0.1:{server.effective_port}/dcr"
    server.close()
    thread.join(timeout=10)


def test_a_browser_rates_a_whole_set_and_the_database_holds_exactly_those_ratings(live, tmp_path):
    study, base = live
    ratings = iter([5, 1, 4, 2, 3, 5])
    with chrome(width=390, height=844, mobile=True) as driver:
        page = start_evaluator(driver, base)
        clicked = rate_set(driver, page, lambda d: next(ratings),
                           screenshot=lambda d: d.save_screenshot(str(tmp_path / "page.png")))
        assert "All done" in driver.page_source  # K = 1
    assert [r for _, r in clicked] == [5, 1, 4, 2, 3, 5] and (tmp_path / "page.png").stat().st_size > 0
    rows = RatingsDB(study.db_path).ratings()
    with sqlite3.connect(study.db_path) as conn:
        shown = dict(conn.execute("SELECT i.item, i.pair FROM items i"))
    assert [(r["pair"], r["rating"]) for r in rows] == [(shown[item], rating) for item, rating in clicked]
    assert sorted(shown.values()) == sorted(study.sets[0])  # the whole first set, each pair once
    assert {r["evaluator"] for r in rows} == {1}


# --- the command line ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["build", "study=x", "sets=[synthetic/*/nope-*]"], "unknown set 'synthetic/*/nope-*'"),
    (["build", "study=x", "sets=[]"], "empty study"),
    (["build", "study=x", "sets=[synthetic/*/fgsm-*]", "design.pairs_per_condition=2"], "exceeds eps"),
    (["serve", "study=s", "server.max_sets_per_evaluator=0"], "max_sets_per_evaluator (K) must be a positive"),
    (["report", "study=missing"], "no study in"),
    (["report", "study=../up"], "study must be a plain name"),
    (["rate", "study=x"], "assess.py needs a command first"),
])
def test_assess_py_stops_with_one_error_line(artifacts, built, argv, message):
    (artifacts / "studies").mkdir(exist_ok=True)
    if not (artifacts / "studies" / "s").exists():
        shutil.copytree(built, artifacts / "studies" / "s")
    proc = run_script("assess", argv, artifacts, check=False, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr[-2000:]


def test_assess_py_builds_and_reports_a_study(artifacts):
    import json

    out = run_script("assess", ["build", "study=cli", "sets={A:synthetic/*/pgd-*,B:synthetic/*/urn-*}",
                                "design.pairs_per_condition=4", "design.pairs_per_set=4"], artifacts, timeout=120)
    assert "study cli: 3 conditions (A 4, B 4, reference 4 pairs), 3 sets of up to 4 pairs" in out.stdout
    study = Study(artifacts / "studies" / "cli")
    client = create_app(study, ServerSettings(admin_token=ADMIN)).test_client()
    page = client.post("/start").headers["Location"]
    with sqlite3.connect(study.db_path) as conn:
        shown = dict(conn.execute("SELECT item, pair FROM items"))
    while item := _item(client, page):  # the attention check rated 1 (passed), every test pair 4
        rating = "1" if study.pairs[shown[item]]["condition"] == ATTENTION else "4"
        assert client.post(page + "/rate", data={"item": item, "rating": rating}).status_code == 303
    rep = run_script("assess", ["report", "study=cli", "report.wandb=false"], artifacts, timeout=120)
    # set 0 is the deal's first four: A, B, reference, then A again
    assert "| URN (B) | 4.00 [—] | 1 | 1 |" in rep.stdout  # B is an urn set: seed 002's URN row
    assert "| Baseline | 4.00 [—] | 1 | 1 | ∞ | 1.000 | 4.49 |" in rep.stdout
    assert "| A | 4.00 [4.00, 4.00] | 2 | 1 |" in rep.stdout  # a PGD set: not in the paper's table, after its rows
    saved = json.loads((study.directory / "report" / "report.json").read_text())
    assert {c["condition"]: c["n"] for c in saved["conditions"]} == {"A": 2, "B": 1, "reference": 1}
    assert (study.directory / "report" / "mos.png").stat().st_size > 0
