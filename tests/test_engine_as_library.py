"""The engine used from Python (a notebook, a QGIS task): errors, warnings, threads, rasters, scores."""

from __future__ import annotations

import types

import numpy as np
import pytest

from core import cli
from core.anomaly import make_detector
from core.errors import (
    CrsMismatchError,
    GeoAnomalyWarning,
    InvalidInputError,
    NotFittedError,
    OutputNotWritableError,
)
from core.preprocess import PreparedSamples, Preprocessor
from core.progress import Progress, SilentProgress


def _samples(n: int = 60, p: int = 5, seed: int = 0) -> PreparedSamples:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
    return PreparedSamples(values.astype(np.float32), rng.uniform(0, 5000, (n, 2)), [f"E{j}" for j in range(p)])


# -- errors ---------------------------------------------------------------------------------------------------
def test_domain_errors_are_the_matching_builtins():
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    assert issubclass(OutputNotWritableError, OSError)
    assert issubclass(CrsMismatchError, ValueError)


@pytest.mark.parametrize("use", [
    lambda: make_detector("knn").score(_samples()),
    lambda: Preprocessor().elements_,
])
def test_not_fitted_is_a_not_fitted_error(use):
    with pytest.raises(NotFittedError, match="not fitted"):
        use()


def test_a_not_fitted_detector_at_the_command_line_exits_2_with_one_line(capsys):
    command = types.SimpleNamespace(run=lambda args, progress: make_detector("pca").score(_samples()))
    args = types.SimpleNamespace(debug=False)
    code = cli._run(command, args, Progress(mode="plain"))
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoanomaly: error:") and "not fitted" in lines[0]
    assert "internal error" not in lines[0] and captured.out == ""


def test_library_warnings_reach_python_without_a_progress_object():
    with pytest.warns(GeoAnomalyWarning, match="twice"):
        SilentProgress().warn("one sample compiled twice")



# -- outputs ----------------------------------------------------------------------------------------------------
def test_outputs_can_be_written_from_a_worker_thread(tmp_path):
    import signal
    import threading

    from core.io.atomic import atomic_output_dir

    before = signal.getsignal(signal.SIGTERM)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with atomic_output_dir(tmp_path / "out") as staging:
                (staging / "scores.csv").write_text("id,score\n1,0.5\n")
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            failures.append(exc)

    worker = threading.Thread(target=write)
    worker.start()
    worker.join()
    assert not failures, failures
    assert (tmp_path / "out" / "scores.csv").read_text().startswith("id,score")
    assert not list(tmp_path.glob(".out.partial-*"))
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_unwritable_output_is_an_oserror(tmp_path):
    from core.io.atomic import atomic_output_dir

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="not a folder"), atomic_output_dir(blocker):
        pass
