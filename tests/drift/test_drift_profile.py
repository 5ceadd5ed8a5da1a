"""Profiles: merge laws, daily == weekly, JSON round trip, compare_profiles == compare."""

from __future__ import annotations

import json
from functools import reduce

import numpy as np
import pandas as pd
import pytest

from drift import DriftPolicy, DriftSpec, ReferenceProfile, WindowProfile, compare, compare_profiles
from drift.errors import IncompatibleProfilesError, InsufficientDataError, InvalidSpecError
from drift.profile import CategoryStats, NumericStats, key_columns
from drift.sample import RowSample

EMB = [f"e{i}" for i in range(6)]


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        "x": rng.normal(shift, 1.0, n),
        "y": rng.exponential(1.0, n),
        "k": rng.integers(0, 3, n),
        "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
    }
    emb = rng.normal(shift, 1.0, (n, len(EMB)))
    data.update({name: emb[:, i] for i, name in enumerate(EMB)})
    out = pd.DataFrame(data)
    out.loc[rng.random(n) < 0.02, "x"] = np.nan
    return out


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    ref = frame(5000, seed=1)
    spec = DriftSpec.infer(ref, embedding=EMB)
    return ReferenceProfile.from_frame(ref, spec, sample_size=300, max_edges=500)


def counts_of(p: WindowProfile) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, col in p.columns.items():
        if isinstance(col, NumericStats):
            out[name] = (col.counts.tolist(), col.n_missing, col.min, col.max)
        else:
            assert isinstance(col, CategoryStats)
            out[name] = (sorted(col.counts.items()), col.n_missing)
    return out


def test_daily_profiles_merge_to_the_weekly_profile(reference: ReferenceProfile) -> None:
    days = [frame(700, seed=10 + d, shift=0.05 * d) for d in range(7)]
    week = reference.profile(pd.concat(days, ignore_index=True))
    merged = WindowProfile.merge_all([reference.profile(d) for d in days])
    assert merged.n_rows == week.n_rows == 4900
    assert counts_of(merged) == counts_of(week)
    for name in ("x", "y"):
        a, b = merged.columns[name], week.columns[name]
        assert isinstance(a, NumericStats) and isinstance(b, NumericStats)
        assert np.allclose(a.sums, b.sums) and a.total_sq == pytest.approx(b.total_sq)
    assert np.array_equal(merged.sample.keys, week.sample.keys)
    pd.testing.assert_frame_equal(merged.sample.rows, week.sample.rows)


def test_merge_is_associative_and_commutative(reference: ReferenceProfile) -> None:
    a, b, c = (reference.profile(frame(400, seed=s)) for s in (21, 22, 23))
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    swapped = reduce(WindowProfile.merge, [c, a, b])
    assert counts_of(left) == counts_of(right) == counts_of(swapped)
    assert np.array_equal(left.sample.keys, swapped.sample.keys)


def test_merge_rejects_profiles_from_other_cells(reference: ReferenceProfile) -> None:
    other_ref = ReferenceProfile.from_frame(frame(3000, seed=99), reference.spec, sample_size=300, max_edges=500)
    with pytest.raises(IncompatibleProfilesError, match="different reference cells"):
        reference.profile(frame(100, seed=3)).merge(other_ref.profile(frame(100, seed=3)))
    with pytest.raises(IncompatibleProfilesError):
        compare_profiles(reference, other_ref.profile(frame(100, seed=3)))


def test_profiles_round_trip_through_json(reference: ReferenceProfile) -> None:
    window = reference.profile(frame(1500, seed=5, shift=0.2))
    ref2 = ReferenceProfile.from_dict(json.loads(json.dumps(reference.to_dict())))
    win2 = WindowProfile.from_dict(json.loads(json.dumps(window.to_dict())))
    assert counts_of(win2) == counts_of(window)
    assert compare_profiles(ref2, win2).to_dict() == compare_profiles(reference, window).to_dict()


def test_sample_is_bounded_and_a_prefix_of_itself(reference: ReferenceProfile) -> None:
    window = reference.profile(frame(2000, seed=6))
    assert len(window.sample) == 300
    assert np.all(np.diff(window.sample.keys.astype(np.float64)) >= 0)
    small = RowSample.from_frame(
        frame(2000, seed=6),
        list(window.sample.rows.columns),
        50,
        key_columns=key_columns(reference.spec),
        seed=0,
    )
    assert np.array_equal(small.keys, window.sample.keys[:50])


@pytest.mark.parametrize("shift", [0.0, 0.4], ids=["identical-distribution", "shifted"])
def test_compare_profiles_agrees_with_compare_on_rows(shift: float) -> None:
    ref, cur = frame(3000, seed=7), frame(2000, seed=8, shift=shift)
    spec = DriftSpec.infer(ref, embedding=EMB, policy=DriftPolicy.any_column())
    fast = compare(ref, cur, spec)
    ref_profile = ReferenceProfile.from_frame(ref, spec)
    prof = compare_profiles(ref_profile, ref_profile.profile(cur))
    assert [c.method for c in prof.columns] == [c.method for c in fast.columns]
    assert [c.drifted for c in prof.columns] == [c.drifted for c in fast.columns]
    assert prof.drifted == fast.drifted == (shift > 0)
    for a, b in zip(prof.columns, fast.columns, strict=True):
        if a.p_value is not None:  # exact unless the cells could not resolve the rows
            tolerance = 0.02 if a.approximate else 1e-9
            assert a.p_value == pytest.approx(b.p_value, abs=tolerance)


def test_window_without_values_in_a_column_is_insufficient(reference: ReferenceProfile) -> None:
    empty = frame(50, seed=9).assign(x=np.nan)
    with pytest.raises(InsufficientDataError, match="no values"):
        compare_profiles(reference, reference.profile(empty))


def test_missing_column_is_named() -> None:
    ref = frame(100, seed=1)
    prof = ReferenceProfile.from_frame(ref, DriftSpec.infer(ref))
    with pytest.raises(InvalidSpecError, match="lacks columns: y"):
        prof.profile(ref.drop(columns=["y"]))
