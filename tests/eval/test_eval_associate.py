"""Timestamp association (ttt3r.eval.trajectory): agreement with evo's matching, hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from ttt3r.errors import TTT3RError
from ttt3r.eval.trajectory import associate, matching_time_indices
from ttt3r.io.trajectory import Trajectory


def test_matching_indices_match_evo():
    sync = pytest.importorskip("evo.core.sync")
    rng = np.random.default_rng(4)
    s1 = np.sort(rng.uniform(0, 10, 60))
    s2 = np.sort(rng.uniform(-1, 11, 200))
    for max_diff in (0.01, 0.05, 0.2):
        for offset in (0.0, 0.03):
            a, b = matching_time_indices(s1, s2, max_diff, offset)
            ea, eb = sync.matching_time_indices(s1, s2, max_diff, offset)
            assert a.tolist() == ea and b.tolist() == eb
    # unsorted second list uses the exhaustive search
    s3 = rng.permutation(s2)
    a, b = matching_time_indices(s1, s3, 0.05)
    ea, eb = sync.matching_time_indices(s1, s3, 0.05)
    assert a.tolist() == ea and b.tolist() == eb


def test_associate_hand_case_and_no_match():
    eye = np.tile(np.eye(4), (3, 1, 1))
    a = Trajectory([0.0, 1.0, 2.0], eye)
    b = Trajectory([0.005, 1.5, 2.009, 3.0], np.tile(np.eye(4), (4, 1, 1)))
    a2, b2 = associate(a, b)
    assert a2.timestamps.tolist() == [0.0, 2.0]
    assert b2.timestamps.tolist() == [0.005, 2.009]
    with pytest.raises(TTT3RError, match="no matching timestamps"):
        associate(a, Trajectory([50.0], np.eye(4)[None]))
