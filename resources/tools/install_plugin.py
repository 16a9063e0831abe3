"""Install the GeoAnomaly plugin into a QGIS profile and enable it.

- default (development): ``<profile>/python/plugins/geoanomaly_qgis`` becomes a
  symlink to this repository's ``geoanomaly_qgis/``, so edits show after a
  plugin reload, and the plugin finds the engine in this repository's ``.venv``;
- ``--zip dist/geoanomaly_qgis.zip``: unpack the packaged plugin instead (what
  "Install from ZIP" in the Plugin Manager does).

The profile is QGIS's default one unless ``--profile`` / ``--profiles-path``
say otherwise (``--profiles-path`` is the folder given to ``qgis --profiles-path``).

Usage: ``python resources/tools/install_plugin.py [--profile NAME] [--profiles-path DIR] [--zip FILE]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "geoanomaly_qgis"


def default_profiles_path() -> Path:
    """The folder holding ``profiles/`` for the current user and platform."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "QGIS" / "QGIS3"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "QGIS" / "QGIS3"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "QGIS" / "QGIS3"


def install(profiles_path: Path, profile: str = "default", zip_path: Path | None = None) -> Path:
    """Install into ``profiles_path/profiles/profile``; return the installed plugin folder."""
    profile_dir = profiles_path / "profiles" / profile
    plugins_dir = profile_dir / "python" / "plugins"
    plugins_dir.mkdir(parents=True, exist_ok=True)
    target = plugins_dir / PLUGIN
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if zip_path is None:
        target.symlink_to(REPO / PLUGIN, target_is_directory=True)
    else:
        with zipfile.ZipFile(zip_path) as archive:
            bad = [name for name in archive.namelist() if not name.startswith(f"{PLUGIN}/") or ".." in name]
            if bad:
                raise SystemExit(f"install_plugin: {zip_path} holds files outside {PLUGIN}/: {bad[:3]}")
            archive.extractall(plugins_dir)
    enable_plugin(profile_dir / "QGIS" / "QGIS3.ini", PLUGIN)
    return target


def enable_plugin(ini: Path, plugin: str) -> None:
    """Set ``[PythonPlugins] plugin=true`` in QGIS's settings file, leaving every other line as it is."""
    ini.parent.mkdir(parents=True, exist_ok=True)
    text = ini.read_text(encoding="utf-8") if ini.exists() else ""
    line = f"{plugin}=true"
    section = re.search(r"^\[PythonPlugins\]\s*$", text, flags=re.M)
    if section is None:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"[PythonPlugins]\n{line}\n"
    else:
        # The section runs to the next [header] or the end of the file.
        end_match = re.search(r"^\[", text[section.end():], flags=re.M)
        end = section.end() + (end_match.start() if end_match else len(text) - section.end())
        body = text[section.end():end]
        pattern = rf"^{re.escape(plugin)}=.*$"
        body = re.sub(pattern, line, body, flags=re.M) if re.search(pattern, body, flags=re.M) \
            else "\n" + line + body
        text = text[:section.end()] + body + text[end:]
    ini.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install the GeoAnomaly plugin into a QGIS profile.")
    parser.add_argument("--profile", default=os.environ.get("QGIS_PROFILE") or "default")
    parser.add_argument("--profiles-path", type=Path, default=None,
                        help=f"folder holding profiles/ (default {default_profiles_path()})")
    parser.add_argument("--zip", type=Path, default=None, help="install this plugin zip instead of a symlink")
    args = parser.parse_args(argv)
    profiles_path = args.profiles_path or default_profiles_path()
    target = install(profiles_path, args.profile, args.zip)
    how = f"from {args.zip}" if args.zip else f"as a link to {REPO / PLUGIN}"
    print(f"GeoAnomaly plugin installed {how} in {target} and enabled; restart QGIS (or reload the plugin).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
