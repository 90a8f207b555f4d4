"""Prepared crop sets named by what they are made from: concurrent jobs prepare once, other preparations never touch
a set in use, and a moved artifacts directory or FF++ root finds its set again. Concurrency runs in real processes.

Run as a script, this file is one such job: ``python tests/test_prepare_sharing.py prepare|read <json>``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advdf.data.datamodule import FFPPDataModule
from advdf.data.prepare import prepare_ffpp
from advdf.data.source import data_identity, prepared_name, real_source_identity
from advdf.data.synthetic import MANIPULATIONS, generate_synthetic_ffpp
from advdf.errors import DataError

REPO = Path(__file__).resolve().parents[1]
TREE = {"num_videos": 8, "num_frames": 4, "size": 96}
PREP = {"frames_per_video_real": 3, "frames_per_video_fake": 1, "crop_size": 24}
VIDEOS = 8 + 4 * 8  # originals and the four manipulations' fakes of the tiny tree


def _datamodule(args: dict) -> FFPPDataModule:
    """The data module a config with these options builds: its prepared directory named by its identity."""
    manips = args.get("manipulations", list(MANIPULATIONS))
    identity = data_identity(args["root"], args.get("synthetic"), "c23", manips, **PREP)
    prepared = Path(args["base"]) / prepared_name("ffpp_synthetic", identity)
    return FFPPDataModule(args["root"], str(prepared), input_size=24, synthetic=args.get("synthetic"),
                          manipulations=manips, **PREP)


def _job(mode: str, args: dict) -> None:
    if mode == "prepare":
        dm = _datamodule(args)
        dm.prepare_data()
        index = (dm.prepared_dir / "index.csv").read_bytes()
        print(json.dumps({"dir": str(dm.prepared_dir), "cropped": dm.prepare_report.cropped_now,
                          "index": hashlib.sha256(index).hexdigest()}))
    else:  # read every crop of a prepared set until the stop file appears
        crops, reads, stop = sorted(Path(args["dir"]).rglob("*.png")), 0, Path(args["stop"])
        while not stop.exists():
            for path in crops:
                assert path.read_bytes()[:4] == b"\x89PNG", path
                reads += 1
        print(json.dumps({"reads": reads}))


def _start(mode: str, args: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, mode, json.dumps(args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _stamps(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_two_identical_jobs_started_together_prepare_once(tmp_path):
    args = {"root": str(tmp_path / "ffpp_synthetic"), "synthetic": TREE, "base": str(tmp_path / "prepared")}
    first, second = _start("prepare", args), _start("prepare", args)
    a, b = _result(first), _result(second)
    assert a["dir"] == b["dir"] and a["index"] == b["index"]
    assert sorted([a["cropped"], b["cropped"]]) == [0, VIDEOS], "the waiting job reused the set, cropping nothing"
    assert len(list(Path(a["dir"]).glob("records/*/*.json"))) == VIDEOS


def test_another_preparation_never_touches_a_set_being_read(tmp_path):
    args = {"root": str(tmp_path / "ffpp_synthetic"), "synthetic": TREE, "base": str(tmp_path / "prepared")}
    dm = _datamodule(args)
    dm.prepare_data()
    before = _stamps(dm.prepared_dir)
    stop = tmp_path / "stop"
    reader = _start("read", {"dir": str(dm.prepared_dir), "stop": str(stop)})
    time.sleep(1.0)
    # other manipulations and another synthetic seed: the shared tree is regenerated, a second set is prepared
    other = _start("prepare", {**args, "synthetic": {**TREE, "seed": 1}, "manipulations": ["Deepfakes", "FaceSwap"]})
    try:
        made = _result(other)
    finally:
        stop.touch()
    assert _result(reader)["reads"] > 0
    assert made["dir"] != str(dm.prepared_dir) and made["cropped"] == 8 + 2 * 8
    assert _stamps(dm.prepared_dir) == before, "the first set's files were changed"


def test_moved_artifacts_directory_reuses_the_prepared_set(tmp_path, monkeypatch):
    from hydra.utils import instantiate

    from advdf.jobs.plan import compose_config
    from tests.helpers.scripts import TINY_DATA

    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "a"))
    dm = instantiate(compose_config("train", TINY_DATA).data)
    dm.prepare_data()
    assert dm.prepare_report.cropped_now > 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # copy2: modification times kept
    shutil.rmtree(tmp_path / "a")
    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path / "b"))
    moved = instantiate(compose_config("train", TINY_DATA).data)
    assert moved.prepared_dir == tmp_path / "b" / dm.prepared_dir.relative_to(tmp_path / "a")
    before = _stamps(moved.prepared_dir)
    moved.prepare_data()
    assert moved.prepare_report.cropped_now == 0 and _stamps(moved.prepared_dir) == before
    assert moved.identity == dm.identity and moved.identity_digest == dm.identity_digest
    assert len(moved.dataset("train")) > 0


def test_a_real_root_mounted_elsewhere_has_the_same_identity(tmp_path):
    root = generate_synthetic_ffpp(tmp_path / "x" / "FaceForensics++", **TREE)
    moved = tmp_path / "mnt" / "ffpp"
    shutil.copytree(root, moved)
    same = real_source_identity(root, "c23", MANIPULATIONS)
    assert real_source_identity(moved, "c23", MANIPULATIONS) == same
    assert data_identity(root, None, "c23", MANIPULATIONS, **PREP) == data_identity(moved, None, "c23",
                                                                                    MANIPULATIONS, **PREP)
    first = prepare_ffpp(root, tmp_path / "prep", **PREP)
    assert first.cropped_now == VIDEOS
    again = prepare_ffpp(moved, tmp_path / "prep", **PREP)  # the set made from the tree before it moved
    assert again.cropped_now == 0 and again.frames_written == first.frames_written

    video = next((moved / "original_sequences/youtube/c23/videos").glob("*.mp4"))
    data = video.read_bytes()
    video.unlink()
    video.write_bytes(data + b"\0")  # another tree: one video replaced by one of another size
    assert real_source_identity(moved, "c23", MANIPULATIONS) != same


def test_a_directory_holding_another_preparation_is_refused_not_deleted(tmp_path):
    root = generate_synthetic_ffpp(tmp_path / "ffpp", **TREE)
    out = tmp_path / "prep"
    prepare_ffpp(root, out, **PREP)
    before = _stamps(out)
    with pytest.raises(DataError, match="holds a preparation with other manipulations"):
        prepare_ffpp(root, out, manipulations=["Deepfakes"], **PREP)
    assert _stamps(out) == before
    rebuilt = prepare_ffpp(root, out, overwrite=True, **PREP)  # its own directory, rebuilt under its lock
    assert rebuilt.cropped_now == VIDEOS


if __name__ == "__main__":
    _job(sys.argv[1], json.loads(sys.argv[2]))
