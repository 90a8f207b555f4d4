"""The face-detector comparison on a tiny synthetic tree: every detector sees the same frames, the counts add up,
and a bad option is one clear line."""

from __future__ import annotations

import json

import pytest

from advdf.data.synthetic import generate_synthetic_ffpp
from benchmarks import bench_faces


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return generate_synthetic_ffpp(tmp_path_factory.mktemp("ffpp"), num_videos=8, num_frames=6, size=128, seed=0)


def test_every_detector_sees_the_same_frames_and_the_counts_add_up(tree, tmp_path):
    out = tmp_path / "faces.md"
    report = bench_faces.main(["--root", str(tree), "--frames-real", "3", "--frames-fake", "1", "--out", str(out)])
    dets = report["detectors"]
    assert set(dets) == {"dlib", "haar", "mtcnn"}
    frames = 8 * 3 + 4 * 8 * 1  # 8 originals x 3 frames, 4 methods x 8 videos x 1 frame
    for s in dets.values():
        assert s["frames"] == frames and s["videos"] == 8 + 4 * 8
        assert 0 <= s["no_face_frames"] <= frames and s["seconds"] > 0
        assert len(s["no_face_videos"]) <= s["no_face_frames"]  # a video without a face has frames without one
    assert dets["dlib"]["iou_n"] == frames - dets["dlib"]["no_face_frames"]  # dlib against itself: every frame
    assert dets["dlib"]["iou_sum"] == pytest.approx(dets["dlib"]["iou_n"])  # ... at IoU 1
    md = out.read_text()
    assert "| detector | videos without a face |" in md and md.count("\n| ") >= 4
    assert json.loads(out.with_suffix(".json").read_text())["videos"] == 40


def test_an_unknown_detector_is_one_clear_error(tree, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_faces.main(["--root", str(tree), "--detectors", "haar,retina", "--out", str(tmp_path / "x.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --detectors: unknown retina; choose from dlib, haar, mtcnn"]
    assert not (tmp_path / "x.md").exists()
