"""The synthetic FF++ tree, the face-crop preparation, and the datasets over its index."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from advdf.data.dataset import FrameDataset, balanced_subset, read_index
from advdf.data.faces import HaarFaceDetector, create_face_detector, square_crop
from advdf.data.prepare import prepare_ffpp
from advdf.data.synthetic import MANIPULATIONS, generate_synthetic_ffpp
from advdf.errors import DataError

TINY = {"num_videos": 8, "num_frames": 4, "size": 96}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return generate_synthetic_ffpp(tmp_path_factory.mktemp("ffpp"), **TINY)


@pytest.fixture(scope="module")
def prepared(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    report = prepare_ffpp(tree, out, frames_per_video_real=4, frames_per_video_fake=2, crop_size=32)
    return out, report


def _first_frame(path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def test_official_layout_and_splits(tree):
    originals = sorted(p.stem for p in (tree / "original_sequences/youtube/c23/videos").glob("*.mp4"))
    assert originals == [f"{i:03d}" for i in range(8)]
    splits = {s: json.loads((tree / "splits" / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    assert all(splits.values())
    members = [v for pairs in splits.values() for pair in pairs for v in pair]
    assert sorted(members) == originals  # every original in exactly one split
    for m in MANIPULATIONS:
        fakes = sorted(p.stem for p in (tree / "manipulated_sequences" / m / "c23/videos").glob("*.mp4"))
        expected = sorted(f"{a}_{b}" for pairs in splits.values() for x, y in pairs for a, b in ((x, y), (y, x)))
        assert fakes == expected
        masks = sorted(p.stem for p in (tree / "manipulated_sequences" / m / "masks/videos").glob("*.mp4"))
        assert masks == fakes


def test_deterministic_by_seed(tree, tmp_path):
    again = generate_synthetic_ffpp(tmp_path / "again", **TINY)
    other = generate_synthetic_ffpp(tmp_path / "other", **TINY, seed=1)
    name = "manipulated_sequences/FaceSwap/c23/videos/" + next(
        (tree / "manipulated_sequences/FaceSwap/c23/videos").glob("*.mp4")).name
    assert np.array_equal(_first_frame(tree / name), _first_frame(again / name))
    assert not np.array_equal(_first_frame(tree / "original_sequences/youtube/c23/videos/000.mp4"),
                              _first_frame(other / "original_sequences/youtube/c23/videos/000.mp4"))


def test_generation_is_idempotent(tree):
    marker = tree / "synthetic.json"
    before = marker.stat().st_mtime_ns
    generate_synthetic_ffpp(tree, **TINY)
    assert marker.stat().st_mtime_ns == before


def test_impossible_synthetic_options(tmp_path):
    with pytest.raises(DataError, match="even and at least 8"):
        generate_synthetic_ffpp(tmp_path, num_videos=7)


def test_manipulations_differ_from_their_original_only_inside_the_mask(tree):
    original = _first_frame(tree / "original_sequences/youtube/c23/videos/000.mp4").astype(int)
    for m in MANIPULATIONS:
        (video,) = (tree / "manipulated_sequences" / m / "c23/videos").glob("000_*.mp4")
        fake = _first_frame(video).astype(int)
        mask = _first_frame(tree / "manipulated_sequences" / m / "masks/videos" / video.name)[..., 0] > 127
        diff = np.abs(fake - original).mean(2)
        assert mask.any()
        assert diff[mask].mean() > 3 * diff[~mask].mean(), m


def test_faces_are_real_enough_for_haar(tree):
    frame = cv2.cvtColor(_first_frame(tree / "original_sequences/youtube/c23/videos/001.mp4"), cv2.COLOR_BGR2RGB)
    assert len(HaarFaceDetector().detect(frame)) >= 1


def test_prepare_index_crops_and_masks(prepared, tree):
    out, report = prepared
    rows = read_index(out)
    assert report.videos == 8 + 4 * 8
    assert report.frames_written == len(rows) > 0.75 * (8 * 4 + 32 * 2)  # 96 px frames: small faces
    splits = {v: s for s in ("train", "val", "test") for p in json.loads((tree / "splits" / f"{s}.json").read_text())
              for a, b in [p] for v in (a, b, f"{a}_{b}", f"{b}_{a}")}
    for r in rows:
        assert r["split"] == splits[r["video_id"]]
        assert r["label"] == (r["manipulation"] != "original")
        image = cv2.imread(str(out / r["path"]))
        assert image.shape == (32, 32, 3)
        assert bool(r["mask_path"]) == bool(r["label"])
        if r["mask_path"]:
            assert cv2.imread(str(out / r["mask_path"]), cv2.IMREAD_GRAYSCALE).shape == (32, 32)


def test_prepare_rerun_is_a_no_op(prepared, tree):
    out, report = prepared
    before = (out / "index.csv").stat().st_mtime_ns
    again = prepare_ffpp(tree, out, frames_per_video_real=4, frames_per_video_fake=2, crop_size=32)
    assert (out / "index.csv").stat().st_mtime_ns == before
    assert again.frames_written == report.frames_written


def test_prepare_resumes_from_per_video_records(tree, tmp_path):
    out = tmp_path / "p"
    prepare_ffpp(tree, out, frames_per_video_real=2, frames_per_video_fake=1, crop_size=32)
    (out / "index.csv").unlink()  # as if killed before the index was written
    first = next((out / "crops" / "original" / "000").glob("*.png"))
    mtime = first.stat().st_mtime_ns
    prepare_ffpp(tree, out, frames_per_video_real=2, frames_per_video_fake=1, crop_size=32)
    assert (out / "index.csv").is_file() and first.stat().st_mtime_ns == mtime


def test_missing_root_names_the_path(tmp_path):
    with pytest.raises(DataError, match=f"data root {tmp_path / 'nope'} does not exist"):
        prepare_ffpp(tmp_path / "nope", tmp_path / "out")


def test_bad_videos_are_reported_not_dropped_silently(tree, tmp_path):
    import shutil

    root = tmp_path / "ffpp"
    shutil.copytree(tree, root)
    videos = root / "original_sequences/youtube/c23/videos"
    (videos / "000.mp4").write_bytes(b"not a video at all")
    writer = cv2.VideoWriter(str(videos / "001.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 96))
    for _ in range(4):
        writer.write(np.full((96, 96, 3), 128, np.uint8))  # a grey video: no face anywhere
    writer.release()
    report = prepare_ffpp(root, tmp_path / "out", frames_per_video_real=4, frames_per_video_fake=1, crop_size=32)
    assert "original/000" in report.undecodable_videos
    assert "original/001" in report.no_face_videos
    assert sum(f.startswith("original/001#") for f in report.no_face_frames) == 4
    assert "original/001" in report.summary() and "undecodable" in report.summary()
    assert {r["video_id"] for r in read_index(tmp_path / "out") if r["manipulation"] == "original"} >= {"002"}


def test_square_crop_pads_at_the_border():
    frame = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    crop = square_crop(frame, (80, 80, 20, 20), scale=1.3, size=16)
    assert crop.shape == (16, 16, 3)
    with pytest.raises(DataError, match="unknown face detector 'retinaface'; available: dlib, haar, mtcnn"):
        create_face_detector("retinaface")


def test_frame_dataset_and_balanced_subset(prepared):
    out, _ = prepared
    rows = [r for r in read_index(out) if r["split"] == "train"]
    subset = balanced_subset(rows, per_class=8)
    assert sum(r["label"] == 0 for r in subset) == 8
    fakes = [r["manipulation"] for r in subset if r["label"] == 1]
    assert len(fakes) == 8 and {fakes.count(m) for m in MANIPULATIONS} == {2}
    ds = FrameDataset(subset, out, input_size=48)
    item = ds[0]
    assert item["image"].shape == (3, 48, 48) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert len({ds[i]["video"] for i in range(len(ds))}) == len({(r["manipulation"], r["video_id"]) for r in subset})


def test_corrupt_png_names_the_file(prepared, tmp_path):
    out, _ = prepared
    row = dict(read_index(out)[0])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    row["path"] = str(bad)
    with pytest.raises(DataError, match=f"cannot read image {bad}"):
        FrameDataset([row], "/", 32)[0]


def _augmented_epochs(tree, out, num_workers: int, seed: int, epochs: int = 2) -> list[torch.Tensor]:
    import albumentations as A
    import pytorch_lightning as pl

    from advdf.data.datamodule import FFPPDataModule

    pl.seed_everything(seed, workers=True)
    augment = A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=1.0)])
    dm = FFPPDataModule(str(tree), str(out), input_size=32, batch_size=4, num_workers=num_workers, augment=augment,
                        limit_per_split=8)
    loader = dm.loader("train", shuffle=False, augmented=True)  # fixed order: only the augmentation draws
    return [torch.cat([b["image"] for b in loader]) for _ in range(epochs)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_training_augmentation_follows_the_global_seed(prepared, tree, num_workers):
    """albumentations keeps a generator of its own; the loader seeds it, so a seeded run trains on the same
    augmented batches again (in the main process and in workers), and another seed gives other batches."""
    out, _ = prepared
    first = _augmented_epochs(tree, out, num_workers, seed=3)
    again = _augmented_epochs(tree, out, num_workers, seed=3)
    other = _augmented_epochs(tree, out, num_workers, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[1])  # each epoch draws new augmentations
