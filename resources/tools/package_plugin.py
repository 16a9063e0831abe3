"""Build the installable QGIS plugin zip: ``dist/geoanomaly_qgis.zip``.

Layout (what QGIS's "Install from ZIP" expects, plus the engine's sources)::

    geoanomaly_qgis/
        metadata.txt  __init__.py  plugin.py  ...  resources/icons/*.svg  resources/styles/*.qml
        engine_src/   core/  pyproject.toml  constraints.txt  README.md
                      (``pip install -c constraints.txt engine_src`` installs the engine)

The zip is reproducible (fixed timestamps, sorted entries) and written under a
temporary name, then renamed, so a failed build never leaves a broken zip.

Usage: ``python resources/tools/package_plugin.py [--out dist/geoanomaly_qgis.zip]``
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "geoanomaly_qgis"
ENGINE_FILES = ["pyproject.toml", "constraints.txt", "README.md", "LICENSE"]
REQUIRED_METADATA = ["name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                     "repository", "tracker", "tags", "icon", "hasProcessingProvider"]
SKIP_DIRS = {"__pycache__", ".venv", ".geoanomaly-venv", ".pytest_cache", ".ruff_cache", "engine_src"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def check_metadata(plugin_dir: Path) -> dict[str, str]:
    """The ``[general]`` section of metadata.txt; raises ``SystemExit`` naming missing keys."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    metadata_path = plugin_dir / "metadata.txt"
    if not parser.read(metadata_path, encoding="utf-8") or "general" not in parser:
        raise SystemExit(f"package_plugin: {metadata_path} is missing or has no [general] section")
    general = dict(parser["general"])
    missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    if missing:
        raise SystemExit(f"package_plugin: metadata.txt lacks {', '.join(missing)}")
    if not (plugin_dir / general["icon"]).is_file():
        raise SystemExit(f"package_plugin: the icon {general['icon']} named in metadata.txt does not exist")
    return general


def plugin_entries(repo: Path = REPO) -> list[tuple[Path, str]]:
    """(file on disk, name in the zip) for the plugin and the engine sources, sorted."""
    entries: list[tuple[Path, str]] = []
    entries += _tree(repo / PLUGIN, PLUGIN)
    entries += _tree(repo / "core", f"{PLUGIN}/engine_src/core")
    for name in ENGINE_FILES:
        if (repo / name).is_file():
            entries.append((repo / name, f"{PLUGIN}/engine_src/{name}"))
    return sorted(entries, key=lambda entry: entry[1])


def _tree(root: Path, prefix: str) -> list[tuple[Path, str]]:
    found = []
    # followlinks: the icons, styles and metadata.txt live at the repository top and are linked in.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if path.suffix in SKIP_SUFFIXES or filename.startswith("."):
                continue
            found.append((path, f"{prefix}/{path.relative_to(root).as_posix()}"))
    return found


def build(out: Path, repo: Path = REPO) -> Path:
    check_metadata(repo / PLUGIN)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path, name in plugin_entries(repo):
                info = zipfile.ZipInfo(name, ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o644 & 0xFFFF) << 16
                archive.writestr(info, path.read_bytes())
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the GeoAnomaly QGIS plugin zip.")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / f"{PLUGIN}.zip", help="zip to write")
    args = parser.parse_args(argv)
    out = build(args.out)
    with zipfile.ZipFile(out) as archive:
        count = len(archive.namelist())
    print(f"{out} ({count} files, {out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
