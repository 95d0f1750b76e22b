"""The network's torch pose encoding (ttt3r.model.pose_encoding) agrees with the numpy core."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ttt3r.geometry import quaternion_to_rotation, unproject
from ttt3r.model.pose_encoding import estimate_focal_weiszfeld, pose_encoding_to_matrix, quaternion_to_matrix


def test_real_first_quaternions_match_the_core_in_tum_order():
    q_xyzw = Rotation.random(20, random_state=np.random.default_rng(0)).as_quat() * 3.0  # any norm
    wxyz = torch.from_numpy(q_xyzw[:, [3, 0, 1, 2]])
    np.testing.assert_allclose(quaternion_to_matrix(wxyz).numpy(), quaternion_to_rotation(q_xyzw), atol=1e-12)


def test_pose_encoding_is_translation_then_quaternion():
    h = np.sqrt(0.5)
    enc = torch.tensor([[1.0, 2.0, 3.0, h, 0.0, 0.0, h]], dtype=torch.float64)  # 90 degrees about z
    m = pose_encoding_to_matrix(enc)[0].numpy()
    np.testing.assert_allclose(m, [[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], atol=1e-12)


def test_focal_of_an_exact_unprojection_is_recovered():
    K = np.array([[150.0, 0, 16.0], [0, 150.0, 12.0], [0, 0, 1]])
    depth = 1.0 + np.random.default_rng(2).uniform(size=(24, 32))
    pts = torch.from_numpy(unproject(depth, K))[None]
    focal = estimate_focal_weiszfeld(pts, torch.tensor([[16.0, 12.0]], dtype=torch.float64))
    assert abs(float(focal[0]) - 150.0) < 1e-6
