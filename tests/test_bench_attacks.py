"""``make bench-attacks``: a tiny run writes the report, the torchattacks, ART and foolbox twins are configured
identically, and a reference that is missing prints "—" and one note."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from advdf.models import create_detector
from benchmarks import bench_attacks, references
from benchmarks.bench_attacks import BUDGETS, attack_specs, face_images, our_options, registered_attacks

ATTACK_COLUMNS = ["attack", "impl", "time s", "advdf time / this", "robust acc", "success rate", "mean L2 (fooled)",
                  "mean L-inf (fooled)", "grad calls / queries (ours)", "iterations", "overhead", "note"]
COL = {name: i for i, name in enumerate(ATTACK_COLUMNS)}
REFS = ("ART", "foolbox")
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
    bench_attacks.main([*TINY, "--attacks", "fgsm,pgd", "--attack-repeats", "2", "--out", str(out)])
    return out.read_text(), json.loads(out.with_suffix(".json").read_text())


def test_tiny_run_writes_the_table_with_finite_numbers(tiny_report):
    md, raw = tiny_report
    assert "clean accuracy is 100 % by construction" in md
    header, rows = _table(md, "attack")
    assert header == ATTACK_COLUMNS
    ours = {r[0]: r for r in rows if r[1] == "advdf"}
    assert set(ours) == {"fgsm", "pgd"}
    for r in rows:
        if r[1] in REFS and r[COL["time s"]] == "—":  # ART or foolbox not installed here
            assert r[COL["note"]] == "not installed"
            continue
        assert math.isfinite(_number(r[COL["time s"]])) and _number(r[COL["time s"]]) > 0
        acc, success = _number(r[COL["robust acc"]]), _number(r[COL["success rate"]])
        assert 0 <= acc <= 1 and 0 <= success <= 1
        # labels are the model's own predictions: every sample is either still right or fooled
        assert acc + success == pytest.approx(1.0, abs=1e-3)
    assert _number(ours["pgd"][COL["grad calls / queries (ours)"]]) == 10  # PGD-10: ten gradient calls per sample
    overhead = _number(ours["pgd"][COL["overhead"]])
    assert math.isfinite(overhead) and overhead > 0
    _, runtimes = _table(md, "runtime")
    eager = next(r for r in runtimes if r[0] == "eager fp32")
    assert _number(eager[1]) > 0 and eager[2] == "1.00x"
    _, targets = _table(md, "target")
    assert len(targets) == 4 and all(t[2] in ("met", "not met", "not measured") for t in targets)
    # the JSON beside the markdown holds the same runs
    assert {(r["attack"], r["impl"]) for r in raw["results"]} >= {("fgsm", "advdf"), ("pgd", "advdf")}
    assert all(r["timed_runs"] == 2 for r in raw["results"])  # --attack-repeats 2: the median of two rounds
    assert "the median of 2 round(s)" in md


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


def _bench_setup(name: str, n: int):
    """The tiny detector, ``n`` face images and their predicted labels, the bench's spec of attack ``name`` and
    advdf's attack built from it (with the options it dropped)."""
    torch.manual_seed(0)
    model = create_detector("tiny_cnn", input_size=32).eval()
    x = face_images(n, 32, seed=0)
    y = model(x).argmax(1)
    spec = attack_specs(BUDGETS["small"], 0.3, seed=0)[name]
    classes, _ = registered_attacks()
    options, dropped = our_options(classes[name], spec.ours)
    return model, x, y, spec, classes[name](model, **options), dropped


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mifgsm", "tifgsm"])
def test_bench_configures_torchattacks_identically(name):
    """The bench's options for advdf and for torchattacks give the same adversarial examples."""
    torchattacks = pytest.importorskip("torchattacks", reason="torchattacks is not installed")
    model, x, y, spec, attack, dropped = _bench_setup(name, 6)
    assert dropped == []
    torch.manual_seed(0)
    ours = attack.run(x, y)
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


@pytest.mark.parametrize(("args", "message"), [
    (["--attacks", "pgd,nosuch"], "--attacks: unknown nosuch"),
    (["--skip-references", "ART,cleverhans"], "--skip-references: unknown cleverhans"),
])
def test_an_unknown_name_is_one_clear_error(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_attacks.main([*TINY, *args, "--out", str(tmp_path / "x.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and message in err[0]
    assert not (tmp_path / "x.md").exists()


def test_skipped_references_run_nothing_and_say_so(tmp_path):
    out = tmp_path / "b.md"
    report = bench_attacks.main([*TINY, "--attacks", "fgsm", "--skip-references", "art,foolbox", "--no-compile",
                                 "--out", str(out)])
    assert {r.impl for r in report.results} <= {"advdf", "torchattacks", "advdf+channels_last", "advdf+bf16"}
    md = out.read_text()
    assert "ART: skipped (--skip-references)" in md and "foolbox: skipped (--skip-references)" in md


def test_face_images_are_in_range_and_distinct():
    x = face_images(5, 48, seed=3)
    assert x.shape == (5, 3, 48, 48) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, face_images(5, 48, seed=3))
    assert (x[0] - x[1]).abs().mean() > 0.01


# --- ART and foolbox ----------------------------------------------------------------------------------------
REF_ATTACKS = "fgsm,cw,deepfool,square,tifgsm"
HAS = {"ART": {"fgsm", "cw", "deepfool", "square"}, "foolbox": {"fgsm", "cw", "deepfool"}}


@pytest.fixture(scope="module")
def ref_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_refs") / "attacks.md"
    bench_attacks.main([*TINY, "--attacks", REF_ATTACKS, "--out", str(out)])
    md = out.read_text()
    header, rows = _table(md, "attack")
    assert header == ATTACK_COLUMNS
    return md, json.loads(out.with_suffix(".json").read_text()), {(r[0], r[1]): r for r in rows}


@pytest.mark.parametrize("label, module", [("ART", "art"), ("foolbox", "foolbox")])
def test_reference_rows_have_finite_numbers_where_the_reference_has_the_attack(ref_report, label, module):
    pytest.importorskip(module, reason=f"{label} is not installed (pip install advdf[bench])")
    md, raw, rows = ref_report
    assert f"{label} not installed" not in md
    ours = {r["attack"]: r for r in raw["results"] if r["impl"] == "advdf"}
    theirs = {r["attack"]: r for r in raw["results"] if r["impl"] == label}
    assert set(theirs) == HAS[label]
    for attack in REF_ATTACKS.split(","):
        row = rows[(attack, label)]
        if attack not in HAS[label]:
            assert row[2:-1] == ["—"] * (len(ATTACK_COLUMNS) - 3) and row[-1] == f"{label} has no {attack}"
            continue
        t, ratio = _number(row[COL["time s"]]), _number(row[COL["advdf time / this"]])
        assert math.isfinite(t) and t > 0 and math.isfinite(ratio) and ratio > 0
        assert ratio == pytest.approx(ours[attack]["time_s"] / theirs[attack]["time_s"], rel=0.01)  # 3 digits
        acc, success = _number(row[COL["robust acc"]]), _number(row[COL["success rate"]])
        assert 0 <= acc <= 1 and acc + success == pytest.approx(1.0, abs=1e-3)
        if success > 0:  # the norms are over the fooled samples
            assert math.isfinite(_number(row[COL["mean L2 (fooled)"]])) and _number(row[COL["mean L2 (fooled)"]]) > 0
            assert 0 < _number(row[COL["mean L-inf (fooled)"]]) <= 1
        if attack in ("fgsm", "square") and success > 0:  # the same L-inf budget, never exceeded
            assert theirs[attack]["linf_fooled"] <= 0.3 + 1e-5
    # FGSM is deterministic: the same budget gives the same robust accuracy as advdf's
    assert theirs["fgsm"]["robust_acc"] == pytest.approx(ours["fgsm"]["robust_acc"])


def test_attacks_no_reference_has_print_dashes(ref_report):
    _, raw, rows = ref_report
    for label in REFS:
        assert rows[("tifgsm", label)][2:-1] == ["—"] * (len(ATTACK_COLUMNS) - 3)
    assert {(m["attack"], m["impl"]) for m in raw["missing"]} >= {("tifgsm", "ART"), ("tifgsm", "foolbox")}
    # torchattacks' rows are as before: one per attack it has (all of these), never a "—" row
    if importlib.util.find_spec("torchattacks") is not None:
        assert {r["attack"] for r in raw["results"] if r["impl"] == "torchattacks"} == set(REF_ATTACKS.split(","))
    assert all(r[2] != "—" for (_, impl), r in rows.items() if impl == "torchattacks")


def test_a_missing_reference_prints_dashes_and_one_note(tmp_path, monkeypatch):
    real = references.import_reference

    def no_references(module):
        if module.split(".")[0] in ("art", "foolbox"):
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        return real(module)

    monkeypatch.setattr(references, "import_reference", no_references)
    out = tmp_path / "b.md"
    report = bench_attacks.main([*TINY, "--attacks", "fgsm,bim", "--out", str(out)])
    md = out.read_text()
    assert {r.impl for r in report.results} <= {"advdf", "torchattacks"}
    _, rows = _table(md, "attack")
    for label in REFS:
        ref_rows = [r for r in rows if r[1] == label]
        assert [r[0] for r in ref_rows] == ["fgsm", "bim"]
        assert all(r[2:-1] == ["—"] * (len(ATTACK_COLUMNS) - 3) and r[-1] == "not installed" for r in ref_rows)
        assert md.splitlines().count(f"- {label} not installed: pip install advdf[bench]") == 1
        assert f"{label} not installed;" in md  # the header's versions line
    assert [r[1] for r in rows if r[0] == "fgsm"][:1] == ["advdf"]
    raw = json.loads(out.with_suffix(".json").read_text())
    assert {(m["attack"], m["impl"], m["reason"]) for m in raw["missing"]} == {
        (a, label, "not installed") for a in ("fgsm", "bim") for label in REFS}


def test_a_failing_reference_attack_prints_dashes_not_a_crash(tmp_path, monkeypatch):
    pytest.importorskip("foolbox", reason="foolbox is not installed")
    real = references.FOOLBOX.attacks["fgsm"]
    broken = references.RefAttack("NoSuchAttack", real.kwargs)
    monkeypatch.setitem(references.FOOLBOX.attacks, "fgsm", broken)
    out = tmp_path / "b.md"
    report = bench_attacks.main([*TINY, "--attacks", "fgsm", "--out", str(out)])
    assert "foolbox" not in {r.impl for r in report.results}
    _, rows = _table(out.read_text(), "attack")
    row = next(r for r in rows if r[1] == "foolbox")
    assert row[2] == "—" and row[-1].startswith("failed: AttributeError")


@pytest.mark.parametrize("label, module", [("ART", "art"), ("foolbox", "foolbox")])
@pytest.mark.parametrize("name", ["fgsm", "bim"])
def test_bench_configures_art_and_foolbox_identically(label, module, name):
    """The deterministic sign attacks give advdf's adversarial examples with the bench's options."""
    pytest.importorskip(module, reason=f"{label} is not installed")
    loaded = next(r for r in references.load_references() if r.label == label)
    model, x, y, spec, attack, _ = _bench_setup(name, 4)
    ours = attack.run(x, y).x_adv
    go, to_tensor = loaded.ref.prepare(loaded.module, loaded.ref.attacks[name], spec.ours, model, x, y,
                                       torch.device("cpu"))
    theirs = to_tensor(go())
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_foolbox_cw_failures_are_scored_as_the_clean_input():
    pytest.importorskip("foolbox", reason="foolbox is not installed")
    loaded = next(r for r in references.load_references() if r.label == "foolbox")
    torch.manual_seed(0)
    model = create_detector("tiny_cnn", input_size=32).eval()
    x = face_images(4, 32, seed=0)
    y = model(x).argmax(1)
    ours = {**attack_specs(BUDGETS["small"], 0.3, seed=0)["cw"].ours, "steps": 2, "c": 1e-6}  # fools none
    go, to_tensor = loaded.ref.prepare(loaded.module, loaded.ref.attacks["cw"], ours, model, x, y,
                                       torch.device("cpu"))
    out = go()
    assert bool((out.flatten(1) == 0).all())  # foolbox's placeholder for "not found"
    assert torch.equal(to_tensor(out), x)
