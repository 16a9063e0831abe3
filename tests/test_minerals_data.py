"""Synthetic photo set, photo loading, split and properties."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from minerals_fixtures import tiny_photo_set  # noqa: F401
from PIL import Image

from core.errors import InvalidInputError
from core.minerals.datasets import PhotoDataset, load_photo, scan_photo_folder, stratified_split
from core.minerals.properties import (
    MINERALS_36,
    PUBLISHED_PROPERTIES,
    encode_properties,
    hardness_bucket,
    read_property_csv,
)
from core.minerals.synthetic import (
    LOOKALIKES,
    class_counts,
    class_looks,
    render_specimen,
    write_synthetic_photo_set,
)


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_class_counts_are_long_tailed_with_imbalance_80():
    counts = class_counts(800, imbalance=80.0)
    assert len(counts) == 36 and set(counts) == set(MINERALS_36)
    values = list(counts.values())
    assert values == sorted(values, reverse=True)
    assert max(values) / min(values) == pytest.approx(80, rel=0.02)
    assert max(counts, key=counts.get) == "Quartz" and min(counts, key=counts.get) == "Cinnabar"


def test_generator_is_deterministic_and_writes_real_photos(tmp_path):
    a = write_synthetic_photo_set(tmp_path / "a", n_max=6, imbalance=3, size=24, seed=5)
    write_synthetic_photo_set(tmp_path / "b", n_max=6, imbalance=3, size=24, seed=5)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    write_synthetic_photo_set(tmp_path / "c", n_max=6, imbalance=3, size=24, seed=6)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    photos = [p for p in (tmp_path / "a").rglob("*") if p.suffix in {".jpg", ".png"}]
    assert len(photos) == sum(a.values())
    assert {p.suffix for p in photos} == {".jpg", ".png"}
    with Image.open(photos[0]) as image:
        assert image.size == (24, 24)


def test_classes_differ_in_colour_but_lookalikes_overlap():
    looks = class_looks(0)
    for hard, twin in LOOKALIKES.items():
        assert looks[hard].texture == looks[twin].texture
        assert np.abs(looks[hard].colour - looks[twin].colour).max() < 0.2
        assert PUBLISHED_PROPERTIES[hard] != PUBLISHED_PROPERTIES[twin]  # properties can tell them apart
    colours = np.stack([looks[n].colour for n in MINERALS_36])
    assert len({tuple(np.round(c, 3)) for c in colours}) == 36
    # The specimen (centre pixels) carries the class colour through the texture and the noise.
    rng = np.random.default_rng(0)
    centre = {n: np.mean([render_specimen(looks[n], 32, rng)[12:20, 12:20].mean((0, 1)) for _ in range(30)], 0)
              for n in ("Pyrite", "Gold", "Malachite")}
    assert np.abs(centre["Pyrite"] - centre["Gold"]).sum() < np.abs(centre["Pyrite"] - centre["Malachite"]).sum()


def test_exif_orientation_is_respected(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white, wide photo
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "p.jpg", quality=95, exif=exif)
    upright = np.asarray(load_photo(tmp_path / "p.jpg"))
    assert upright.shape == (20, 40, 3)
    assert upright[:, :15].mean() > 200 and upright[:, 25:].mean() < 50


def test_unreadable_photos_are_reported_and_skipped(tmp_path, tiny_photo_set):  # noqa: F811
    root, counts = tiny_photo_set
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "Quartz" / "broken.jpg").write_bytes(b"not a photo at all")
    (copy / "Quartz" / "notes.txt").write_text("ignored: not a photo")
    collection = scan_photo_folder(copy)
    assert collection.unreadable == ["Quartz/broken.jpg"]
    assert len(collection.files) == sum(counts.values())
    with pytest.raises(InvalidInputError, match="broken.jpg"):
        load_photo(copy / "Quartz" / "broken.jpg")


def test_split_is_stratified_and_fixed_by_seed(tiny_photo_set):  # noqa: F811
    root, counts = tiny_photo_set
    a = scan_photo_folder(root, seed=1)
    b = scan_photo_folder(root, seed=1, check_files=False)
    c = scan_photo_folder(root, seed=2, check_files=False)
    assert list(a.split) == list(b.split) and list(a.split) != list(c.split)
    assert a.classes == sorted(MINERALS_36)
    for split in ("train", "val", "test"):
        assert (a.class_counts(split) >= 1).all()  # every class appears in every split
    assert a.class_counts("train").sum() == pytest.approx(0.8 * len(a.files), rel=0.1)
    assert a.class_counts("train")[a.classes.index("Quartz")] == 24 - 2 - 2


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(InvalidInputError):
        stratified_split(np.zeros(10, int), 0.6, 0.5, 0)


def test_presplit_collection_is_used_as_split(tmp_path):
    for split in ("train", "test"):
        for name in ("Quartz", "Pyrite"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / split / name / f"{split}.png")
    collection = scan_photo_folder(tmp_path)
    assert sorted(collection.split) == ["test", "test", "train", "train"]
    assert collection.files[0].startswith("train/") or collection.files[0].startswith("test/")


def test_property_encoding_and_table(tmp_path):
    assert hardness_bucket(2.5) == 1 and hardness_bucket(3.5) == 2 and hardness_bucket(7) == 3
    assert list(encode_properties("3.5", "metallic", "black")) == [2, 0, 1]
    assert list(encode_properties(None, "", "white")) == [-1, -1, 0]
    assert list(encode_properties("hard", "vitreous", None)) == [3, 1, -1]
    assert PUBLISHED_PROPERTIES["Galena"] == (1, 0, 1) and PUBLISHED_PROPERTIES["Quartz"] == (3, 1, 0)
    assert len(PUBLISHED_PROPERTIES) == 36
    (tmp_path / "p.csv").write_text("file,hardness,hardness_bucket,luster,streak\nQuartz/a.jpg,,3,,white\nb.jpg,2,,metallic,\n")
    table = read_property_csv(tmp_path / "p.csv")
    assert list(table["Quartz/a.jpg"]) == [3, -1, 0] and list(table["b.jpg"]) == [1, 0, -1]
    (tmp_path / "bad.csv").write_text("file,luster\nx.jpg,shiny-ish\n")
    with pytest.raises(InvalidInputError, match="line 2"):
        read_property_csv(tmp_path / "bad.csv")


def test_specimen_properties_fall_back_on_the_published_table(tmp_path):
    for name in ("Quartz", "Galena"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "properties.csv").write_text("file,hardness,luster,streak\nQuartz/0.png,6.5,,\n")
    collection = scan_photo_folder(tmp_path)
    by_file = dict(zip(collection.files, collection.properties.tolist()))
    assert by_file["Quartz/0.png"] == [3, -1, -1]  # measured: blanks stay missing
    assert by_file["Quartz/1.png"] == [3, 1, 0]  # no row: published code
    assert by_file["Galena/2.png"] == [1, 0, 1]


def test_dataset_gives_normalised_tensors(tiny_photo_set):  # noqa: F811
    root, _ = tiny_photo_set
    collection = scan_photo_folder(root, check_files=False)
    data = PhotoDataset(collection, collection.indices("train"), size=28, train=True)
    image, label, props = data[0]
    assert tuple(image.shape) == (3, 28, 28) and 0 <= label < 36 and tuple(props.shape) == (3,)
    assert float(image.abs().max()) < 5
    evaluation = PhotoDataset(collection, collection.indices("test"), size=28, train=False)
    assert evaluation[0][0].shape == image.shape
    assert float((evaluation[0][0] - evaluation[0][0]).abs().sum()) == 0


def test_generator_can_write_a_presplit_set_with_a_balanced_test_folder(tmp_path):
    counts = write_synthetic_photo_set(tmp_path, n_max=8, imbalance=4, size=24, seed=1, test_per_class=4)
    collection = scan_photo_folder(tmp_path)
    assert (collection.class_counts("test") == 4).all() and (collection.class_counts("val") == 1).all()
    assert collection.class_counts("train")[collection.classes.index("Quartz")] == counts["Quartz"] == 8
    measured = collection.properties[collection.indices("test")]
    assert (measured == -1).any()  # blanks of properties.csv (published codes have none): rows were found
