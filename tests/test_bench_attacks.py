"""``make bench-attacks``: a tiny run writes the report, and the torchattacks twins are configured identically."""

from __future__ import annotations

import json
import math

import pytest
import torch

from advdf.models import create_detector
from benchmarks import bench_attacks
from benchmarks.bench_attacks import BUDGETS, attack_specs, face_images, our_options, registered_attacks

ATTACK_COLUMNS = ["attack", "impl", "time s", "robust acc", "success rate", "mean L2 (fooled)",
                  "grad calls / queries (ours)", "iterations", "overhead", "note"]
TINY = ["--model", "tiny_cnn", "--input-size", "32", "--batch", "4", "--repeats", "1", "--device", "cpu",
        "--no-compile", "--eps", "0.3", "--threads", "1"]


def _table(md: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the markdown table whose first column is ``first_header``."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return header, rows


def _number(cell: str) -> float:
    return float(cell.rstrip("x"))


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "attacks.md"
    bench_attacks.main([*TINY, "--attacks", "fgsm,pgd", "--out", str(out)])
    return out.read_text(), json.loads(out.with_suffix(".json").read_text())


def test_tiny_run_writes_the_table_with_finite_numbers(tiny_report):
    md, raw = tiny_report
    assert "clean accuracy is 100 % by construction" in md
    header, rows = _table(md, "attack")
    assert header == ATTACK_COLUMNS
    ours = {r[0]: r for r in rows if r[1] == "advdf"}
    assert set(ours) == {"fgsm", "pgd"}
    for r in rows:
        assert math.isfinite(_number(r[2])) and _number(r[2]) > 0
        assert 0 <= _number(r[3]) <= 1 and 0 <= _number(r[4]) <= 1
        # labels are the model's own predictions: every sample is either still right or fooled
        assert _number(r[3]) + _number(r[4]) == pytest.approx(1.0, abs=1e-3)
    assert _number(ours["pgd"][6]) == 10  # PGD-10: ten gradient calls per sample
    assert math.isfinite(_number(ours["pgd"][8])) and _number(ours["pgd"][8]) > 0
    _, runtimes = _table(md, "runtime")
    eager = next(r for r in runtimes if r[0] == "eager fp32")
    assert _number(eager[1]) > 0 and eager[2] == "1.00x"
    _, targets = _table(md, "target")
    assert len(targets) == 4 and all(t[2] in ("met", "not met", "not measured") for t in targets)
    # the JSON beside the markdown holds the same runs
    assert {(r["attack"], r["impl"]) for r in raw["results"]} >= {("fgsm", "advdf"), ("pgd", "advdf")}


def test_pgd_fast_variants_are_reported_against_fp32(tiny_report):
    md, raw = tiny_report
    fast = [r for r in raw["results"] if r["impl"].startswith("advdf+")]
    assert {r["impl"] for r in fast} == {"advdf+channels_last", "advdf+bf16"}  # compile is off in this run
    header, rows = _table(md, "variant")
    assert header[:2] == ["variant", "time s"] and len(rows) == 3
    assert all(math.isfinite(_number(r[5])) for r in rows)  # the robust-accuracy difference
    assert "compile: --no-compile" in md


def test_torchattacks_comparison_runs(tiny_report):
    pytest.importorskip("torchattacks", reason="torchattacks is not installed (pip install --no-deps torchattacks)")
    md, raw = tiny_report
    theirs = {r["attack"]: r for r in raw["results"] if r["impl"] == "torchattacks"}
    ours = {r["attack"]: r for r in raw["results"] if r["impl"] == "advdf"}
    assert set(theirs) == {"fgsm", "pgd"}
    for name in theirs:
        assert theirs[name]["time_s"] > 0 and theirs[name]["overhead"] > 0
        # same hyper-parameters and the same seed: the same adversarial examples, hence the same accuracy
        assert theirs[name]["robust_acc"] == pytest.approx(ours[name]["robust_acc"])
    speedup = _table(md, "variant")[1][0][2]
    assert math.isfinite(_number(speedup))


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mifgsm", "tifgsm"])
def test_bench_configures_torchattacks_identically(name):
    """The bench's options for advdf and for torchattacks give the same adversarial examples."""
    torchattacks = pytest.importorskip("torchattacks", reason="torchattacks is not installed")
    torch.manual_seed(0)
    model = create_detector("tiny_cnn", input_size=32).eval()
    x = face_images(6, 32, seed=0)
    y = model(x).argmax(1)
    spec = attack_specs(BUDGETS["small"], 0.3, seed=0)[name]
    classes, _ = registered_attacks()
    options, dropped = our_options(classes[name], spec.ours)
    assert dropped == []
    torch.manual_seed(0)
    ours = classes[name](model, **options).run(x, y)
    torch.manual_seed(0)
    theirs = getattr(torchattacks, spec.theirs)(model, **spec.theirs_kwargs)(x, y)
    assert torch.allclose(ours.x_adv, theirs, atol=1e-6)


def test_unregistered_attack_is_skipped_with_a_note(tmp_path, monkeypatch):
    real = registered_attacks

    def without_nes():
        classes, errors = real()
        classes.pop("nes", None)
        return classes, errors

    monkeypatch.setattr(bench_attacks, "registered_attacks", without_nes)
    out = tmp_path / "b.md"
    report = bench_attacks.main([*TINY, "--attacks", "fgsm,nes", "--out", str(out)])
    assert {r.attack for r in report.results} == {"fgsm"}
    assert "nes: skipped, not registered" in out.read_text()


def test_unknown_attack_name_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_attacks.main([*TINY, "--attacks", "pgd,nosuch", "--out", str(tmp_path / "x.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "--attacks: unknown nosuch" in err[0]
    assert not (tmp_path / "x.md").exists()


def test_face_images_are_in_range_and_distinct():
    x = face_images(5, 48, seed=3)
    assert x.shape == (5, 3, 48, 48) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, face_images(5, 48, seed=3))
    assert (x[0] - x[1]).abs().mean() > 0.01
