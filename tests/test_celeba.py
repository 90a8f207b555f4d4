"""The synthetic CelebA tree, the CelebA readers and dataset, and their one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from advdf.data.celeba import (
    CMUA_TEST_FIRST,
    CelebADataModule,
    CelebADataset,
    read_attributes,
    split_rows,
)
from advdf.data.celeba_faces import (
    ATTGAN_ATTRIBUTES,
    CELEBA_ATTRIBUTES,
    HAIR_COLOURS,
    NEUTRAL,
    RENDERED_ATTRIBUTES,
    STARGAN_ATTRIBUTES,
    STGAN_ATTRIBUTES,
    attribute_region,
    plan_image,
    render_face,
)
from advdf.data.synthetic_celeba import generate_synthetic_celeba, sample_attributes
from advdf.errors import ConfigError, DataError

N = 40


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return generate_synthetic_celeba(tmp_path_factory.mktemp("celeba"), n_images=N)


def _rows(root: Path) -> list[list[str]]:
    return [line.split() for line in (root / "list_attr_celeba.txt").read_text().splitlines()[2:]]


def _one_line_error(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


def test_layout_matches_the_official_files(tree):
    lines = (tree / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == str(N)
    assert tuple(lines[1].split()) == CELEBA_ATTRIBUTES and len(CELEBA_ATTRIBUTES) == 40
    assert CELEBA_ATTRIBUTES[0] == "5_o_Clock_Shadow" and CELEBA_ATTRIBUTES[-1] == "Young"
    rows = _rows(tree)
    names = [f"{i:06d}.jpg" for i in range(1, N + 1)]
    assert [r[0] for r in rows] == names
    assert "  1" in lines[2] or "  1" in lines[3]  # the official file pads +1 to the width of -1
    values = np.array([r[1:] for r in rows], dtype=int)
    assert values.shape == (N, 40) and set(np.unique(values)) <= {-1, 1}
    rendered = [CELEBA_ATTRIBUTES.index(a) for a in RENDERED_ATTRIBUTES]
    others = np.delete(values, rendered, axis=1)
    assert others.shape[1] == 27 and (others == -1).all()
    assert set(STARGAN_ATTRIBUTES) | set(STGAN_ATTRIBUTES) <= set(ATTGAN_ATTRIBUTES) == set(RENDERED_ATTRIBUTES)
    assert sorted(p.name for p in (tree / "img_align_celeba").iterdir()) == names
    assert cv2.imread(str(tree / "img_align_celeba" / names[0])).shape == (218, 178, 3)  # aligned CelebA's size
    assert json.loads((tree / "synthetic.json").read_text())["n_images"] == N


def test_partition_is_contiguous_80_10_10(tree):
    parts = [line.split() for line in (tree / "list_eval_partition.txt").read_text().splitlines()]
    assert [p[0] for p in parts] == [r[0] for r in _rows(tree)]
    assert [int(p[1]) for p in parts] == [0] * 32 + [1] * 4 + [2] * 4
    assert [len(split_rows(tree, s)) for s in ("train", "val", "test")] == [32, 4, 4]
    assert split_rows(tree, "cmua_test") == []  # a 40-image tree has no image numbered 182638 or later


def test_attribute_draws_respect_exclusions_and_priors():
    drawn = sample_attributes(20000, np.random.default_rng(0))
    col = {name: drawn[:, i] for i, name in enumerate(RENDERED_ATTRIBUTES)}
    hair = np.stack([col[h] for h in HAIR_COLOURS], 1)
    assert hair.sum(1).max() == 1 and (hair.sum(1) == 0).any()  # one hair colour or none
    assert not (col["Bald"] & (hair.any(1) | col["Bangs"])).any()
    rates = drawn.mean(0)
    assert ((rates > 0.18) & (rates < 0.65)).all(), dict(zip(RENDERED_ATTRIBUTES, rates.round(3), strict=True))


def test_the_tree_follows_the_exclusions(tree):
    table = read_attributes(tree)
    value = {name: table.values[:, table.names.index(name)] > 0 for name in RENDERED_ATTRIBUTES}
    hair = np.stack([value[h] for h in HAIR_COLOURS], 1)
    assert hair.sum(1).max() <= 1
    assert not (value["Bald"] & (hair.any(1) | value["Bangs"])).any()
    assert all(0 < v.sum() < N for v in value.values())  # every attribute varies even in 40 images


def test_generation_is_deterministic_idempotent_and_seeded(tree, tmp_path):
    marker = (tree / "synthetic.json").stat().st_mtime_ns
    generate_synthetic_celeba(tree, n_images=N)
    assert (tree / "synthetic.json").stat().st_mtime_ns == marker
    again = generate_synthetic_celeba(tmp_path / "again", n_images=N)
    other = generate_synthetic_celeba(tmp_path / "other", n_images=N, seed=1)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba/000007.jpg"):
        assert (tree / name).read_bytes() == (again / name).read_bytes()
    assert (tree / "list_attr_celeba.txt").read_text() != (other / "list_attr_celeba.txt").read_text()
    assert (tree / "img_align_celeba/000007.jpg").read_bytes() != (other / "img_align_celeba/000007.jpg").read_bytes()


@pytest.mark.parametrize("name", RENDERED_ATTRIBUTES)
def test_each_attribute_changes_its_region_and_nothing_else(name):
    for index in (3, 7, 11):
        plan = plan_image(0, index)
        without, with_ = render_face(plan, {}), render_face(plan, {name: not NEUTRAL[name]})
        diff = np.abs(with_ - without).max(-1)
        region = attribute_region(plan, name)
        assert region.mean() < 0.2  # local: a small part of the image
        assert diff[~region].max() == 0  # not one pixel outside it moves
        assert diff[region].mean() > 0.05 and (diff[region] > 0.1).mean() > 0.25


def test_attributes_sit_at_fixed_face_relative_places():
    for index in (0, 5, 9):
        plan = plan_image(0, index)
        row = {n: np.nonzero(attribute_region(plan, n))[0].mean() for n in RENDERED_ATTRIBUTES}
        assert row["Bangs"] < row["Bushy_Eyebrows"] < row["Eyeglasses"] < row["Mustache"] < row["Mouth_Slightly_Open"]
        assert row["Black_Hair"] < row["Eyeglasses"] < row["No_Beard"]
        eyes = attribute_region(plan, "Eyeglasses")
        cols = np.nonzero(eyes.any(0))[0]
        assert abs(cols.mean() - plan.cx) < 2  # symmetric about the face centre


def test_hair_colours_are_told_apart_and_bald_replaces_hair():
    plan = plan_image(0, 2)
    region = attribute_region(plan, "Black_Hair")
    colours = [render_face(plan, {h: True})[region].mean(0) for h in (*HAIR_COLOURS, "Bald")]
    for i in range(len(colours)):
        for j in range(i):
            assert np.abs(colours[i] - colours[j]).max() > 0.08
    assert colours[0].max() < colours[2].mean() < colours[1].mean()  # black darker than brown darker than blond


def test_dataset_shapes_ranges_and_values(tree):
    ds = CelebADataset(tree, "train", ["Male", "Young"], image_size=32)
    assert len(ds) == 32
    image, attrs = ds[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert -1 <= image.min() < 0 < image.max() <= 1
    table = read_attributes(tree)
    row = table.images.index(ds.images[5])
    expected = [table.values[row, table.names.index(n)] > 0 for n in ("Male", "Young")]
    assert attrs.dtype == torch.float32 and attrs.tolist() == [float(e) for e in expected]
    assert set(torch.unique(ds.labels).tolist()) <= {0.0, 1.0}
    assert len(CelebADataset(tree, "test", ["Male"], image_size=32, limit=3)) == 3


def test_attributes_come_in_the_requested_order(tree):
    names = ["Young", "Bald", "Eyeglasses", "No_Beard"]
    forward = CelebADataset(tree, "val", names, image_size=32)
    backward = CelebADataset(tree, "val", names[::-1], image_size=32)
    assert torch.equal(forward.labels, backward.labels.flip(1))
    table = read_attributes(tree)
    rows = [table.images.index(n) for n in forward.images]
    expected = (table.values[rows][:, [table.names.index(n) for n in names]] > 0).astype(np.float32)
    assert np.array_equal(forward.labels.numpy(), expected)


def test_images_are_read_as_cmua_watermark_reads_them(tree):
    """CenterCrop(170), Resize(S), ToTensor, Normalize(0.5, 0.5) on the PIL image."""
    from torchvision import transforms

    path = tree / "img_align_celeba" / "000001.jpg"
    ds = CelebADataset(tree, "train", ["Male"], image_size=170)
    decoded = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert torch.equal(ds[0][0], torch.from_numpy(decoded[24:194, 4:174] / 127.5 - 1).permute(2, 0, 1))
    reference = transforms.Compose([transforms.CenterCrop(170), transforms.Resize(32), transforms.ToTensor(),
                                    transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    ours = CelebADataset(tree, "train", ["Male"], image_size=32)[0][0]
    assert (ours - reference(Image.open(path))).abs().max() < 1e-5


def _made_up_tree(root: Path, names: list[str], partitions: list[int], count: int | None = None,
                  attributes: tuple[str, ...] = ("Smiling", "Male", "Young")) -> Path:
    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    values = rng.choice([-1, 1], (len(names), len(attributes)))
    rows = [f"{n}  " + "  ".join(f"{v:2d}" for v in row) for n, row in zip(names, values, strict=True)]
    text = "\n".join([str(len(names) if count is None else count), "  ".join(attributes), *rows]) + "\n"
    (root / "list_attr_celeba.txt").write_text(text)
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partitions,
                                                                                       strict=True)))
    for name in names:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(root / "img_align_celeba" / name)
    return root


def test_cmua_test_split_starts_at_182638(tmp_path):
    names = [f"{i:06d}.jpg" for i in range(182634, 182642)]
    root = _made_up_tree(tmp_path / "celeba", names, [0, 1, 1, 1, 2, 2, 2, 2])
    ds = CelebADataset(root, "cmua_test", ["Young", "Male"], image_size=16)
    assert CMUA_TEST_FIRST == 182638
    assert ds.images == [f"{i:06d}.jpg" for i in range(182638, 182642)]  # 0-based row 182637 of the official file
    assert CelebADataset(root, "test", ["Male"], image_size=16).images == names[4:]
    assert CelebADataset(root, "val", ["Male"], image_size=16).images == names[1:4]


def test_bad_inputs_fail_with_one_line(tmp_path, tree):
    with pytest.raises(DataError) as err:
        CelebADataset(tmp_path / "nowhere", "train", ["Male"])
    assert "does not exist" in _one_line_error(err) and "nowhere" in str(err.value)

    no_attr = tmp_path / "no_attr"
    shutil.copytree(tree, no_attr)
    (no_attr / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError) as err:
        CelebADataset(no_attr, "train", ["Male"])
    assert "missing list_attr_celeba.txt" in _one_line_error(err)

    no_part = tmp_path / "no_partition"
    shutil.copytree(tree, no_part)
    (no_part / "list_eval_partition.txt").unlink()
    with pytest.raises(DataError) as err:
        CelebADataset(no_part, "train", ["Male"])
    assert "missing list_eval_partition.txt" in _one_line_error(err)

    with pytest.raises(DataError) as err:
        CelebADataset(tree, "train", ["Male", "Blue_Hair"])
    message = _one_line_error(err)
    assert "'Blue_Hair'" in message and "5_o_Clock_Shadow" in message and "Young" in message

    names = [f"{i:06d}.jpg" for i in range(1, 5)]
    counted = _made_up_tree(tmp_path / "count", names, [0, 0, 1, 2], count=5)
    with pytest.raises(DataError) as err:
        CelebADataset(counted, "train", ["Male"])
    assert "count line says 5 images but 4 rows follow" in _one_line_error(err)

    corrupt = _made_up_tree(tmp_path / "corrupt", names, [0, 0, 1, 2])
    (corrupt / "img_align_celeba" / "000002.jpg").write_bytes(b"not a jpeg at all")
    ds = CelebADataset(corrupt, "train", ["Male"], image_size=16)
    assert ds[0][0].shape == (3, 16, 16)
    with pytest.raises(DataError) as err:
        ds[1]
    assert "cannot read CelebA image" in _one_line_error(err) and "000002.jpg" in str(err.value)

    with pytest.raises(DataError) as err:
        CelebADataset(tree, "holdout", ["Male"])
    assert "unknown CelebA split 'holdout'" in _one_line_error(err)


def test_malformed_rows_fail_with_one_line(tmp_path):
    names = [f"{i:06d}.jpg" for i in range(1, 5)]
    root = _made_up_tree(tmp_path / "rows", names, [0, 0, 1, 2])
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], lines[3] + " 1", *lines[4:]]) + "\n")
    with pytest.raises(DataError) as err:
        CelebADataset(root, "train", ["Male"])
    assert "line 4: 4 values for 3 attributes" in _one_line_error(err)
    path.write_text("\n".join([*lines[:3], lines[3].replace("-1", " 0", 1).replace(" 1", " 0", 1), *lines[4:]]))
    with pytest.raises(DataError) as err:
        CelebADataset(root, "train", ["Male"])
    assert "values must be 1 or -1" in _one_line_error(err)


def test_datamodule_generates_loads_and_names_its_data(tree, tmp_path):
    dm = CelebADataModule(str(tree), attributes=["Black_Hair", "Male"], image_size=32, batch_size=8,
                          synthetic={"n_images": N}, name="celeba_synthetic", limit_per_split=10)
    dm.prepare_data()  # the finished tree has these parameters: nothing is rewritten
    images, attrs = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and attrs.shape == (8, 2)
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [10, 4, 4]
    assert str(tree) not in json.dumps(dm.identity)
    assert dm.identity["source"]["synthetic"]["n_images"] == N
    assert CelebADataModule(str(tmp_path / "elsewhere"), synthetic={"n_images": N}).identity["source"] == \
        CelebADataModule(str(tree), synthetic={"n_images": N}).identity["source"]  # the tree need not exist yet

    moved = tmp_path / "moved"
    shutil.copytree(tree, moved)
    real = CelebADataModule(str(tree)).identity
    assert real == CelebADataModule(str(moved)).identity and str(tree) not in json.dumps(real)
    assert set(real["source"]["real"]["files"]) == {"list_attr_celeba.txt", "list_eval_partition.txt"}
    (moved / "list_eval_partition.txt").write_text((moved / "list_eval_partition.txt").read_text().replace(
        "000001.jpg 0", "000001.jpg 1"))
    assert CelebADataModule(str(moved)).identity != real

    (moved / "synthetic.json").unlink()  # now it looks like a real download: never overwritten
    with pytest.raises(DataError) as err:
        CelebADataModule(str(moved), synthetic={"n_images": N}).prepare_data()
    assert "did not write" in _one_line_error(err)
    with pytest.raises(ConfigError):
        CelebADataModule(str(tree), attributes=["Male", "Male"])
    with pytest.raises(DataError) as err:
        _ = CelebADataModule(str(tmp_path / "missing")).identity
    assert "does not exist" in _one_line_error(err)


def test_the_config_builds_the_datamodule(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from advdf.utils.entry import CONF_DIR, register_resolvers

    monkeypatch.setenv("ADVDF_ARTIFACTS", str(tmp_path))
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="test"):
        cfg = compose("train", overrides=["data=celeba"])
    dm = instantiate(cfg.data)
    assert isinstance(dm, CelebADataModule) and dm.name == "celeba_synthetic"
    assert tuple(dm.attributes) == ATTGAN_ATTRIBUTES and dm.image_size == 128 and dm.crop == 170
    assert dm.root == tmp_path / "data" / "celeba_synthetic" and not dm.root.exists()  # generated on first use
