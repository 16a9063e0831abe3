"""Preprocessing with known answers: CLR/ILR by hand, detection limits, missing assays, oxides, pathfinders."""

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInputError
from core.io.samples import read_samples
from core.preprocess import Preprocessor, transforms
from core.preprocess.elements import ATOMIC_WEIGHT, assay_columns, pathfinder_elements


def test_clr_matches_hand_computation():
    x = np.array([[1.0, 2.0, 4.0], [10.0, 10.0, 10.0]])
    # Row 1: ln 1, ln 2, ln 4 minus their mean ln 2 -> [-ln2, 0, ln2].
    expected = np.array([[-np.log(2), 0.0, np.log(2)], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(transforms.clr(x), expected, atol=1e-12)
    # Scale invariance: a composition in other units has the same CLR.
    np.testing.assert_allclose(transforms.clr(x * 1e4), expected, atol=1e-12)


def test_ilr_is_an_isometry_of_clr():
    rng = np.random.default_rng(1)
    x = np.exp(rng.normal(size=(20, 5)))
    basis = transforms.ilr_basis(5)
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(basis.sum(axis=0), 0, atol=1e-12)
    d_clr = np.linalg.norm(transforms.clr(x)[0] - transforms.clr(x)[1])
    d_ilr = np.linalg.norm(transforms.ilr(x)[0] - transforms.ilr(x)[1])
    assert d_ilr == pytest.approx(d_clr)


def test_log_ratio_rejects_non_positive():
    with pytest.raises(InvalidInputError, match="positive"):
        transforms.clr(np.array([[1.0, 0.0]]))


def _table(tmp_path, frame):
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    return read_samples(path, crs="EPSG:28350")


def _frame(n=20, **columns):
    base = {"X": 500000.0 + 100 * np.arange(n), "Y": np.full(n, 6.5e6)}
    base.update(columns)
    return pd.DataFrame(base)


def test_below_detection_and_missing_imputation(tmp_path):
    rng = np.random.default_rng(0)
    cu = rng.uniform(10, 100, 20)
    cu[0] = -5.0      # below detection limit 5 -> 2.5
    cu[1] = -9999.0   # missing -> median of detected values, flagged
    zn = rng.uniform(10, 100, 20)
    table = _table(tmp_path, _frame(Cu_ppm=cu, Zn_ppm=zn))
    pre = Preprocessor(transform="none", scaling="none").fit(table)
    raw, imputed, _ = pre._impute(table, "s.csv")
    assert raw[0, 0] == pytest.approx(2.5)
    assert raw[1, 0] == pytest.approx(np.median(cu[2:]))
    assert imputed[0, 0] and imputed[1, 0] and not imputed[2, 0]
    pre3 = Preprocessor(transform="none", scaling="none", detection_limit_fraction=0.3).fit(table)
    assert pre3._impute(table, "s.csv")[0][0, 0] == pytest.approx(1.5)


def test_mostly_missing_elements_are_dropped_with_a_reason(tmp_path):
    n = 20
    au = np.full(n, -9999.0)
    au[:5] = [1.0, 2.0, 3.0, 4.0, 5.0]  # 75 % missing
    table = _table(tmp_path, _frame(n, Cu_ppm=np.linspace(1, 2, n), Zn_ppm=np.linspace(2, 5, n),
                                    Ni_ppm=np.linspace(3, 4, n) ** 2, Au_ppb=au))
    pre = Preprocessor().fit(table)
    assert pre.elements_ == ["Cu", "Zn", "Ni"]
    dropped = pre.dropped_()
    assert dropped[0]["element"] == "Au" and "75% missing" in dropped[0]["reason"]
    assert Preprocessor(max_missing=0.8).fit(table).elements_ == ["Cu", "Zn", "Ni", "Au"]


def test_oxides_fold_into_their_element():
    mapping = assay_columns(["Fe_ppm", "Fe2O3_pct", "Al2O3_pct", "LOI_pct", "H2Opos_pct", "Au_ppb"])
    assert [c for c, _ in mapping["Fe"]] == ["Fe_ppm", "Fe2O3_pct"]
    factor = dict(mapping["Fe"])["Fe2O3_pct"]
    fe_fraction = 2 * ATOMIC_WEIGHT["Fe"] / (2 * ATOMIC_WEIGHT["Fe"] + 3 * ATOMIC_WEIGHT["O"])
    assert factor == pytest.approx(1e4 * fe_fraction)
    assert dict(mapping["Au"])["Au_ppb"] == pytest.approx(1e-3)
    assert "Al" in mapping and "H" not in mapping and "LOI" not in mapping


def test_oxide_fills_gaps_of_the_element_column(tmp_path):
    n = 20
    fe = np.full(n, 50000.0)
    fe[:3] = -9999.0
    fe2o3 = np.full(n, -9999.0)
    fe2o3[:3] = 10.0  # 10 % Fe2O3 = 69,940 ppm Fe
    table = _table(tmp_path, _frame(n, Fe_ppm=fe, Fe2O3_pct=fe2o3, Cu_ppm=np.linspace(1, 9, n)))
    pre = Preprocessor(transform="none", scaling="none").fit(table)
    raw, imputed, _ = pre._impute(table, "s.csv")
    assert raw[0, pre.elements_.index("Fe")] == pytest.approx(69943, rel=1e-3)
    assert not imputed[:, pre.elements_.index("Fe")].any()


def test_text_assays_with_less_than_signs(tmp_path):
    table = _table(tmp_path, _frame(4 * 5, Cu_ppm=["<2", "10", "12", "14"] * 5, Zn_ppm=np.arange(20) + 1.0))
    raw, imputed, _ = Preprocessor(transform="none", scaling="none").fit(table)._impute(table, "s.csv")
    assert raw[0, 0] == pytest.approx(1.0) and imputed[0, 0]


def test_non_numeric_column_is_named(tmp_path):
    table = _table(tmp_path, _frame(20, Cu_ppm=["abc"] * 20, Zn_ppm=np.arange(20) + 1.0))
    with pytest.raises(InvalidInputError, match="Cu_ppm.*non-numeric.*'abc'"):
        Preprocessor().fit(table)


def test_pathfinders_select_a_documented_subset(sed1_samples):
    table = read_samples(sed1_samples)
    pre = Preprocessor(pathfinders="gold").fit(table)
    assert set(pre.elements_) <= set(pathfinder_elements("Au"))
    assert {"Au", "As", "Cu"} <= set(pre.elements_)
    with pytest.raises(InvalidInputError, match="no pathfinder set"):
        pathfinder_elements("unobtainium")
    for commodity in ("Au", "Cu", "Ni", "W", "Li", "Pb-Zn"):
        assert len(pathfinder_elements(commodity)) >= 8


def test_fit_once_apply_to_new_samples_and_round_trip(tmp_path, sed1_samples):
    table = read_samples(sed1_samples)
    pre = Preprocessor().fit(table.subset(np.arange(0, 1000)))
    again = Preprocessor.from_dict(pre.to_dict())
    new = table.subset(np.arange(1000, 1392))
    np.testing.assert_array_equal(pre.transform(new).values, again.transform(new).values)
    prepared = pre.transform(table)
    assert prepared.values.dtype == np.float32 and np.isfinite(prepared.values).all()
    # Duplicate locations (572 rows share one in this survey) pass through untouched.
    assert len(np.unique(prepared.xy, axis=0)) < len(prepared.xy)


def test_too_few_samples(tmp_path):
    table = _table(tmp_path, _frame(5, Cu_ppm=np.arange(5) + 1.0, Zn_ppm=np.arange(5) + 2.0))
    with pytest.raises(InvalidInputError, match="too few"):
        Preprocessor().fit(table)


def test_colocated_samples_are_counted():
    from core.preprocess.duplicates import colocated_report

    xy = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    values = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 3.0], [1.0, 2.0], [5.0, 5.0]])
    report = colocated_report(xy, values)
    # Three rows share a location, two of them with identical assays; row 3 has the same assays elsewhere.
    assert report == {"samples": 5, "locations": 3, "sharing_a_location": 3, "identical_to_a_co_located_sample": 2}


def test_location_groups_chain_samples_within_the_tolerance():
    from core.preprocess.duplicates import location_groups

    xy = np.array([[5.0, 0.0], [0.0, 0.0], [5.0, 0.0], [0.0, 0.5], [0.0, 0.9], [9.0, 9.0]])
    np.testing.assert_array_equal(location_groups(xy, tolerance_m=0.6), [0, 1, 0, 1, 1, 2])
    np.testing.assert_array_equal(location_groups(xy, tolerance_m=1e-3), [0, 1, 0, 2, 3, 4])
    assert location_groups(np.zeros((0, 2))).shape == (0,)


def test_the_commodity_is_never_dropped_when_mostly_below_detection(tmp_path):
    n = 20
    au = np.full(n, -0.5)                       # 70 % below the 0.5 ppb detection limit
    au[:6] = [1.0, 2.0, 3.0, 5.0, 8.0, 13.0]
    table = _table(tmp_path, _frame(n, Cu_ppm=np.linspace(1, 2, n), Zn_ppm=np.linspace(2, 5, n),
                                    Au_ppb=au, Fe_ppm=np.full(n, -9999.0)))
    assert "Au" not in Preprocessor().fit(table).elements_       # commodity-blind: today's rule drops it
    pre = Preprocessor(commodity="gold").fit(table)
    assert pre.commodity == "Au" and "Au" in pre.elements_
    entry = next(r for r in pre.report_ if r["element"] == "Au")
    assert entry["kept"] and entry["protected"] and "70% missing or below detection" in entry["note"]
    raw, not_assayed = pre.imputed_assays(table)
    j = pre.elements_.index("Au")
    assert raw[10, j] == pytest.approx(0.5 * 0.5e-3)            # imputed at half the limit, in ppm
    assert pre.transform(table).imputed[10, j] and not not_assayed[10, j]
    # Fe is outside the Au suite and has no value: it follows today's rule.
    assert "Fe" not in pre.elements_
    # The suite survives a save and load with the model.
    again = Preprocessor.from_dict(pre.to_dict())
    assert again.commodity == "Au" and again.suite_() == pre.suite_()


def test_commodity_suite_is_editable_and_the_commodity_column_required(tmp_path):
    from core.preprocess.elements import commodity_suite, read_pathfinders_file

    n = 20
    table = _table(tmp_path, _frame(n, Cu_ppm=np.linspace(1, 2, n), Zn_ppm=np.linspace(2, 5, n),
                                    As_ppm=np.linspace(3, 4, n) ** 2))
    with pytest.raises(InvalidInputError, match="no assay column for the commodity Au"):
        Preprocessor(commodity="Au").fit(table)
    listed = tmp_path / "suite.txt"
    listed.write_text("# my Au suite\nAs, Sb\nBi\n")
    assert read_pathfinders_file(listed) == ["As", "Sb", "Bi"]
    suite = commodity_suite("Au", read_pathfinders_file(listed), available=["Au", "As", "Bi", "Cu"])
    assert suite == {"Au": 1.0, "As": 0.5, "Bi": 0.5}
    bad = tmp_path / "bad.txt"
    bad.write_text("arsenic\n")
    with pytest.raises(InvalidInputError, match="element symbols"):
        read_pathfinders_file(bad)
    with pytest.raises(InvalidInputError, match="no pathfinder set"):
        commodity_suite("Unobtainium")
