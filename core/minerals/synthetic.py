"""A deterministic synthetic long-tailed set of specimen photos.

No real mineral photo collection ships with the project, so tests and
benchmarks use this stand-in: one folder per Minerals-36 class, real JPEG and
PNG files (a few JPEGs carry an EXIF orientation tag with rotated pixels, as
phone photos do), class sizes falling geometrically from the largest to the
smallest class by ``imbalance`` (~80, like Minerals-36), and a
``properties.csv`` with noisy per-specimen hardness/luster/streak (some blank).

Each class has its own colour and texture statistics (banding, facets, spots,
grains, metallic highlights). A few classes are near-copies of another class
(e.g. Gold of Pyrite, Halite of Quartz), so some pairs genuinely overlap and
cannot all be told apart from the photo alone - that is where properties help
the multimodal model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.minerals.properties import MINERALS_36

# Head-to-tail order (largest class first), following the published shares
# (Quartz .24, Fluorite .11, Wulfenite .06, Beryl .05, Pyrite .04, ...,
# Halite, Orpiment .006, Cinnabar .003); the middle order is made up.
CLASS_ORDER = (
    "Quartz", "Fluorite", "Wulfenite", "Beryl", "Pyrite", "Azurite", "Malachite",
    "Elbaite", "Rhodochrosite", "Galena", "Sphalerite", "Almandine", "Topaz", "Chalcopyrite",
    "Hematite", "Agate", "Schorl", "Epidote", "Opal", "Diopside", "Albite", "Stibnite", "Magnetite",
    "Cassiterite", "Copper", "Demantoid", "Anglesite", "Ruby", "Sapphire", "Marcasite", "Torbernite",
    "Sulphur", "Gold", "Halite", "Orpiment", "Cinnabar",
)
CLASS_ORDER = tuple(name for name in CLASS_ORDER if name in MINERALS_36)

# Hard classes: drawn from (almost) the same photo statistics as another class, as fool's gold
# looks like gold. Each pair differs in a published property (mostly hardness), so a
# hardness/luster/streak test can separate what the photo cannot.
LOOKALIKES = {"Gold": "Pyrite", "Halite": "Quartz", "Marcasite": "Chalcopyrite", "Magnetite": "Galena",
              "Sulphur": "Wulfenite", "Sapphire": "Azurite", "Cinnabar": "Ruby"}

# Mohs hardness ranges, for per-specimen property values.
MOHS = {
    "Agate": (6.5, 7), "Albite": (6, 6.5), "Almandine": (7, 7.5), "Anglesite": (2.5, 3), "Azurite": (3.5, 4),
    "Beryl": (7.5, 8), "Cassiterite": (6, 7), "Chalcopyrite": (3.5, 4), "Cinnabar": (2, 2.5),
    "Copper": (2.5, 3), "Demantoid": (6.5, 7), "Diopside": (5.5, 6.5), "Elbaite": (7, 7.5), "Epidote": (6, 7),
    "Fluorite": (4, 4), "Galena": (2.5, 2.5), "Gold": (2.5, 3), "Halite": (2, 2.5), "Hematite": (5, 6),
    "Magnetite": (5.5, 6.5), "Malachite": (3.5, 4), "Marcasite": (6, 6.5), "Opal": (5.5, 6.5),
    "Orpiment": (1.5, 2), "Pyrite": (6, 6.5), "Quartz": (7, 7), "Rhodochrosite": (3.5, 4), "Ruby": (9, 9),
    "Sapphire": (9, 9), "Schorl": (7, 7.5), "Sphalerite": (3.5, 4), "Stibnite": (2, 2), "Sulphur": (1.5, 2.5),
    "Topaz": (8, 8), "Torbernite": (2, 2.5), "Wulfenite": (3, 3),
}


@dataclass(frozen=True)
class ClassLook:
    """Colour and texture statistics of one synthetic mineral class."""

    colour: np.ndarray  # (3,) base RGB in [0, 1]
    accent: np.ndarray  # (3,) second colour of the texture
    texture: int  # 0 bands, 1 facets, 2 spots, 3 grains, 4 concentric rings
    frequency: float  # pattern frequency (cycles per image)
    angle: float  # pattern orientation (radians)
    metallic: float  # strength of specular highlights
    noise: float  # per-pixel noise level


def class_counts(n_max: int, imbalance: float = 80.0, classes: tuple[str, ...] = CLASS_ORDER) -> dict[str, int]:
    """Photos per class: geometric fall from ``n_max`` to ``n_max / imbalance``."""
    k = len(classes)
    ranks = np.arange(k) / max(k - 1, 1)
    counts = np.maximum(1, np.round(n_max * imbalance ** (-ranks))).astype(int)
    return {name: int(n) for name, n in zip(classes, counts)}


def class_looks(seed: int = 0) -> dict[str, ClassLook]:
    rng = np.random.default_rng([seed, 7])
    looks: dict[str, ClassLook] = {}
    for name in MINERALS_36:
        looks[name] = ClassLook(
            colour=rng.uniform(0.1, 0.95, 3), accent=rng.uniform(0.0, 1.0, 3), texture=int(rng.integers(0, 5)),
            frequency=float(rng.uniform(2.0, 9.0)), angle=float(rng.uniform(0, np.pi)),
            metallic=float(rng.choice([0.0, 0.0, 0.6])), noise=float(rng.uniform(0.03, 0.12)),
        )
    for hard, twin in LOOKALIKES.items():
        base = looks[twin]
        looks[hard] = ClassLook(
            colour=np.clip(base.colour + rng.normal(0, 0.05, 3), 0, 1), accent=base.accent,
            texture=base.texture, frequency=base.frequency * 1.15, angle=base.angle,
            metallic=base.metallic, noise=base.noise,
        )
    return looks


def render_specimen(look: ClassLook, size: int, rng: np.random.Generator) -> np.ndarray:
    """One photo (size, size, 3) uint8: a textured specimen on a plain background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    background = rng.uniform(0.15, 0.9) + 0.15 * (xx * rng.normal() + yy * rng.normal())
    image = np.repeat(background[..., None], 3, axis=2)
    # Irregular specimen outline: an ellipse with a wobbly radius.
    cx, cy = rng.uniform(-0.1, 0.1, 2)
    theta = np.arctan2(yy - cy, xx - cx)
    rot = rng.uniform(0, np.pi)
    a, b = rng.uniform(0.25, 0.42, 2)
    u = (xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)
    v = -(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)
    wobble = 1 + 0.12 * np.sin(3 * theta + rng.uniform(0, 6)) + 0.06 * np.sin(7 * theta + rng.uniform(0, 6))
    inside = (u / a) ** 2 + (v / b) ** 2 < wobble**2
    # Texture in [0, 1], class-specific kind, frequency and orientation (jittered per photo).
    angle = look.angle + rng.normal(0, 0.25)
    freq = look.frequency * rng.uniform(0.85, 1.15)
    along = (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi * freq
    if look.texture == 0:
        pattern = 0.5 + 0.5 * np.sin(along + rng.uniform(0, 6))
    elif look.texture == 1:
        across = (-xx * np.sin(angle) + yy * np.cos(angle)) * 2 * np.pi * freq * 0.6
        pattern = (np.floor(along / np.pi) + np.floor(across / np.pi)) % 2
    elif look.texture == 2:
        pattern = np.zeros_like(xx)
        for _ in range(int(freq * 2)):
            px, py, r = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.02, 0.07)
            pattern = np.maximum(pattern, ((xx - px) ** 2 + (yy - py) ** 2 < r * r).astype(np.float32))
    elif look.texture == 3:
        pattern = rng.uniform(0, 1, (size, size)) ** 3
    else:
        radius = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) * 2 * np.pi * freq
        pattern = 0.5 + 0.5 * np.sin(radius)
    colour = np.clip(look.colour + rng.normal(0, 0.04, 3), 0, 1)
    stone = colour * (1 - 0.55 * pattern[..., None]) + look.accent * 0.55 * pattern[..., None]
    light = 0.8 + 0.4 * (-(xx - cx) * 0.7 - (yy - cy) * 0.7)
    stone = stone * light[..., None]
    if look.metallic > 0:
        hx, hy = rng.uniform(-0.2, 0.2, 2)
        glint = np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / 0.01)
        stone = stone + look.metallic * glint[..., None]
    stone = stone + rng.normal(0, look.noise, stone.shape)
    image = np.where(inside[..., None], stone, image)
    image = image + rng.normal(0, 0.02, image.shape)  # camera noise everywhere
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def specimen_properties(name: str, rng: np.random.Generator, blank_share: float, error_share: float) -> dict:
    """Noisy field measurements for one specimen (CSV cells, '' = not measured)."""
    from core.minerals.properties import PUBLISHED_PROPERTIES

    code = PUBLISHED_PROPERTIES[name]
    low, high = MOHS[name]
    mohs = float(np.clip(rng.uniform(low, high) + rng.normal(0, 0.25), 1, 10))
    luster = "metallic" if code[1] == 0 else "non-metallic"
    streak = "coloured" if code[2] == 1 else "white"
    if rng.random() < error_share:  # a misjudged property, as happens in the field
        which = int(rng.integers(0, 3))
        if which == 0:
            mohs = float(rng.uniform(1.5, 9))
        elif which == 1:
            luster = "non-metallic" if luster == "metallic" else "metallic"
        else:
            streak = "white" if streak == "coloured" else "coloured"
    cells = {"hardness": f"{mohs:.1f}", "luster": luster, "streak": streak}
    for key in cells:
        if rng.random() < blank_share:
            cells[key] = ""
    return cells


def write_synthetic_photo_set(
    out_dir: str | Path,
    n_max: int = 200,
    imbalance: float = 80.0,
    size: int = 64,
    seed: int = 0,
    png_share: float = 0.2,
    exif_share: float = 0.05,
    blank_share: float = 0.15,
    error_share: float = 0.05,
    test_per_class: int = 0,
) -> dict[str, int]:
    """Write the photo set (folder per class + properties.csv); returns photos per class.

    With ``test_per_class`` > 0 the set comes already split: ``train/`` holds
    the long tail, ``val/`` and ``test/`` hold ``max(1, test_per_class // 4)``
    and ``test_per_class`` photos of *every* mineral (a balanced test set
    measures rare minerals as precisely as common ones). Same arguments ->
    byte-identical files.
    """
    out = Path(out_dir)
    looks = class_looks(seed)
    counts = class_counts(n_max, imbalance)
    n_val = max(1, test_per_class // 4) if test_per_class > 0 else 0
    rows = []
    for class_index, (name, count) in enumerate(counts.items()):
        for i in range(count + n_val + test_per_class):
            split = "" if not test_per_class else "train" if i < count else "val" if i < count + n_val else "test"
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, class_index, i])
            pixels = render_specimen(looks[name], size, rng)
            kind = rng.random()
            if kind < png_share:
                file = folder / f"{name.lower()}_{i:05d}.png"
                Image.fromarray(pixels).save(file)
            elif kind < png_share + exif_share:
                # Stored rotated, with the EXIF tag that tells viewers to turn it back.
                file = folder / f"{name.lower()}_{i:05d}.jpg"
                exif = Image.Exif()
                exif[0x0112] = 6  # "rotate 90 CW to view"
                Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90).save(file, quality=92, exif=exif)
            else:
                file = folder / f"{name.lower()}_{i:05d}.jpg"
                Image.fromarray(pixels).save(file, quality=92)
            rows.append({"file": file.relative_to(out).as_posix(),
                         **specimen_properties(name, rng, blank_share, error_share)})
    with open(out / "properties.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "hardness", "luster", "streak"])
        writer.writeheader()
        writer.writerows(rows)
    return counts
