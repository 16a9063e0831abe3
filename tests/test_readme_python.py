"""The README's "Use from Python" section runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def readme_python_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one Python block"
    return blocks[0]


def test_the_readme_python_section_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    names = {"OUT": tmp_path}
    exec(compile(readme_python_block(), "README.md (Use from Python)", "exec"), names)  # noqa: S102
    printed = capsys.readouterr().out
    assert re.search(r"pca AUC 0\.\d{3}", printed) and re.search(r"cell AUC 0\.\d{3}", printed)
    assert (tmp_path / "anomaly.tif").is_file() and (tmp_path / "percentile.tif").is_file()
    probability = names["probability"]
    assert probability.shape == names["evidence"].shape
    finite = probability[np.isfinite(probability)]
    assert finite.size and ((finite >= 0) & (finite <= 1)).all()
