"""Specimen photo collections: folder per mineral, split, properties, tensors.

A collection is a folder with one sub-folder per mineral holding its photos
(JPEG, PNG, WebP). A collection already split by its author (``train/``,
``val/``, ``test/`` sub-folders, each folder-per-class) is used as split;
otherwise the photos are split per class (stratified) with a fixed seed.
Class counts come from the file list; no photo is decoded to count it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InvalidInputError
from core.minerals.properties import published_vector, read_property_csv

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
IGNORED_FILES = {"thumbs.db", "desktop.ini"}  # written by file browsers, not by the geologist
SPLITS = ("train", "val", "test")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PhotoCollection:
    """Readable photos of a collection, their mineral and their split."""

    root: Path
    classes: list[str]
    files: list[str]  # paths relative to root, "/"-separated
    labels: np.ndarray  # (n,) int64 class index
    split: np.ndarray  # (n,) "train" / "val" / "test"
    unreadable: list[str] = field(default_factory=list)
    properties: np.ndarray | None = None  # (n, 3) float32, -1 = missing

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def class_counts(self, split: str = "train") -> np.ndarray:
        return np.bincount(self.labels[self.indices(split)], minlength=len(self.classes))


def load_photo(path: str | Path) -> Image.Image:
    """An RGB photo, turned upright as its EXIF orientation tag says."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise InvalidInputError(f"cannot read the photo {path}: {exc}") from None


def _is_readable(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # noqa: BLE001 - any failure means the file cannot be used
        return False


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(p for p in sub.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        if photos:
            found[sub.name] = photos
    return found


def scan_photo_folder(
    root: str | Path,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    properties_csv: str | Path | None = None,
    classes: list[str] | None = None,
    check_files: bool = True,
) -> PhotoCollection:
    """Find the photos of a collection, check they open, and split them.

    ``classes`` fixes the class order (e.g. a trained model's); photos of
    other minerals are then left out. Unreadable files are listed in
    ``unreadable`` and skipped. ``properties_csv`` defaults to
    ``ROOT/properties.csv`` when that file exists.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InvalidInputError(f"photo folder {root} does not exist or is not a folder")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    groups: dict[str, dict[str, list[Path]]] = (
        {s: _class_folders(root / s) for s in SPLITS if (root / s).is_dir()} if presplit else {"": _class_folders(root)}
    )
    found_classes = sorted({name for group in groups.values() for name in group})
    if classes is None:
        classes = found_classes
        if len(classes) < 2:
            raise InvalidInputError(
                f"photo folder {root} needs one sub-folder per mineral (at least two) holding JPEG/PNG/WebP photos; "
                f"found {len(classes)}"
            )
    index = {name: i for i, name in enumerate(classes)}
    files, labels, splits, unreadable = [], [], [], []
    for split_name, group in groups.items():
        for name, photos in group.items():
            if name not in index:
                continue
            for photo in photos:
                rel = photo.relative_to(root).as_posix()
                if check_files and not _is_readable(photo):
                    unreadable.append(rel)
                    continue
                files.append(rel)
                labels.append(index[name])
                splits.append(split_name)
    if not files:
        raise InvalidInputError(f"no readable photos of the minerals {classes[:5]}... in {root}")
    labels_arr = np.asarray(labels, dtype=np.int64)
    split = np.asarray(splits, dtype=object) if presplit else stratified_split(labels_arr, val_fraction, test_fraction, seed)
    collection = PhotoCollection(root, list(classes), files, labels_arr, split.astype(str), unreadable)
    csv_path = Path(properties_csv) if properties_csv else root / "properties.csv"
    if properties_csv and not csv_path.is_file():
        raise InvalidInputError(f"property table {csv_path} does not exist")
    collection.properties = specimen_properties(collection, read_property_csv(csv_path) if csv_path.is_file() else {})
    return collection


def check_training_collection(collection: PhotoCollection, min_photos: int = 3) -> None:
    """Refuse, in one line, a collection that cannot be trained on as it is.

    Every mineral folder needs at least ``min_photos`` photos (one each for training, validation and
    testing), and every file in it must be a readable photo: training quietly without some of the
    geologist's photos would give a model of another collection than the one they think.
    """
    if collection.unreadable:
        more = f" (and {len(collection.unreadable) - 1} more)" if len(collection.unreadable) > 1 else ""
        raise InvalidInputError(f"cannot read the photo {collection.unreadable[0]}{more}: fix or remove it")
    roots = [collection.root / s for s in SPLITS if (collection.root / s).is_dir()]
    presplit = (collection.root / "train").is_dir() and (collection.root / "test").is_dir()
    for folder in (roots if presplit else [collection.root]):
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = [p for p in sub.rglob("*") if p.is_file() and not p.name.startswith(".")
                     and p.name.lower() not in IGNORED_FILES]
            if not files:
                raise InvalidInputError(f"the mineral folder {sub} holds no photos: add photos or remove the folder")
            others = [p for p in files if p.suffix.lower() not in PHOTO_SUFFIXES]
            if others:
                raise InvalidInputError(f"{others[0]} is not a photo (JPEG, PNG or WebP): move it out of the "
                                        f"mineral folders")
    if not presplit:
        counts = np.bincount(collection.labels, minlength=len(collection.classes))
        few = [f"{collection.classes[c]} ({counts[c]})" for c in np.flatnonzero(counts < min_photos)]
        if few:
            raise InvalidInputError(f"each mineral needs at least {min_photos} photos (training, validation, test); "
                                    f"too few: {', '.join(few[:5])}{' ...' if len(few) > 5 else ''}")


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Per-class random split; every class with >= 3 photos gets at least one val and one test photo."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InvalidInputError(f"val/test fractions {val_fraction}, {test_fraction} must be in [0, 1) and sum below 1")
    split = np.full(len(labels), "train", dtype=object)
    for c in np.unique(labels):
        # One generator per class, seeded by (seed, class): adding a class elsewhere leaves this split alone.
        members = np.flatnonzero(labels == c)
        members = members[np.random.default_rng([seed, int(c)]).permutation(len(members))]
        n = len(members)
        n_test = max(1, int(round(n * test_fraction))) if n >= 3 and test_fraction > 0 else 0
        n_val = max(1, int(round(n * val_fraction))) if n >= 3 and val_fraction > 0 else 0
        split[members[:n_test]] = "test"
        split[members[n_test:n_test + n_val]] = "val"
    return split


def specimen_properties(collection: PhotoCollection, table: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 3) properties: the specimen's CSV row, else its mineral's published code."""
    by_name: dict[str, np.ndarray] = {}
    for key, vector in table.items():
        by_name.setdefault(key.rsplit("/", 1)[-1], vector)
    out = np.empty((len(collection.files), 3), dtype=np.float32)
    for i, (rel, label) in enumerate(zip(collection.files, collection.labels)):
        vector = table.get(rel)
        if vector is None:
            vector = by_name.get(rel.rsplit("/", 1)[-1])
        out[i] = vector if vector is not None else published_vector(collection.classes[label])
    return out


def collection_fingerprint(collection: PhotoCollection) -> str:
    """A short hash of the file list, labels and split (to check a resumed run uses the same data)."""
    text = "\n".join(f"{f}\t{c}\t{s}" for f, c, s in zip(collection.files, collection.labels, collection.split))
    return f"{zlib.crc32(text.encode()):08x}-{len(collection.files)}"


# -- tensors --------------------------------------------------------------------------------------------


def photo_transform(size: int, train: bool, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD):
    """Training: random resized crop + flip; evaluation: resize to size*256/224, centre crop.

    ``mean``/``std``: the normalisation the backbone's weights were trained with (``Backbone.mean/std``).
    """
    from torchvision import transforms as T

    normalise = [T.ToTensor(), T.Normalize(mean, std)]
    if train:
        return T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0)), T.RandomHorizontalFlip(), *normalise])
    return T.Compose([T.Resize(int(round(size * 256 / 224))), T.CenterCrop(size), *normalise])


class PhotoDataset:
    """torch-style dataset of (image tensor, label, properties) for chosen photos.

    Small collections are decoded once and kept in memory (resized so the
    short side is ``size * 256/224``), so later epochs do not decode again.
    """

    def __init__(self, collection: PhotoCollection, indices: np.ndarray, size: int, train: bool,
                 cache_limit_mb: float = 1024.0, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD) -> None:
        self.collection = collection
        self.indices = np.asarray(indices, dtype=np.int64)
        self.size = size
        self.transform = photo_transform(size, train, mean, std)
        short = int(round(size * 256 / 224))
        self._short = short
        self._cache: dict[int, Image.Image] | None = (
            {} if len(self.indices) * short * short * 3 * 1.5 / 1e6 <= cache_limit_mb else None
        )

    def __len__(self) -> int:
        return len(self.indices)

    def _photo(self, i: int) -> Image.Image:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        image = load_photo(self.collection.root / self.collection.files[i])
        if self._cache is not None:
            scale = self._short / min(image.size)
            if scale < 1:
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                     Image.Resampling.BILINEAR)
            self._cache[i] = image
        return image

    def __getitem__(self, position: int):
        import torch

        i = int(self.indices[position])
        image = self.transform(self._photo(i))
        props = self.collection.properties[i] if self.collection.properties is not None else np.full(3, -1.0)
        return image, int(self.collection.labels[i]), torch.as_tensor(props, dtype=torch.float32)
