"""Loop retrieval: the revisits of a synthetic two-lap loop are found, nothing within the min gap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from ttt3r.errors import TTT3RError
from ttt3r.loops.descriptors import encoder_descriptor, image_descriptor
from ttt3r.loops.retrieval import DescriptorStore, find_loop_candidates, revisit_pairs

LAP = 100  # frames per lap


def panorama(seed: int = 0, h: int = 120, w: int = 2000) -> np.ndarray:
    """A smooth random colour texture that wraps around horizontally (a room seen by a turning camera)."""
    rng = np.random.default_rng(seed)
    tex = np.stack([gaussian_filter(rng.random((h, w)), (3, 6), mode="wrap") for _ in range(3)], axis=-1)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (tex * 255).astype(np.uint8)


def loop_frames(laps: int = 2, width: int = 160, seed: int = 0):
    """Frame i sees columns [20 i, 20 i + width) of the panorama (mod its width): lap 2 revisits lap 1."""
    pano = panorama(seed)
    rng = np.random.default_rng(seed + 1)
    step = pano.shape[1] // LAP
    for i in range(laps * LAP):
        cols = (np.arange(width) + step * i) % pano.shape[1]
        img = pano[:, cols].astype(np.float64)
        if i >= LAP:  # a later lap: other noise, slightly other exposure
            img = img * 1.05 + rng.normal(0, 4, img.shape)
        yield i, np.clip(img, 0, 255).astype(np.uint8)


def test_image_descriptors_find_the_revisits_and_nothing_within_the_gap():
    store = DescriptorStore()
    for i, img in loop_frames():
        store.add(i, image_descriptor(img))
    assert store.descriptors.shape[0] == 2 * LAP
    cands = find_loop_candidates(store.descriptors, store.frames, min_gap=30, top_k=1, min_similarity=0.5)
    assert cands, "no loop candidates"
    assert all(c.i - c.j >= 30 for c in cands)
    truth = {(i, i - LAP) for i in range(LAP, 2 * LAP)}
    hits = [c for c in cands if abs((c.i - c.j) - LAP) <= 1]
    precision = len(hits) / len(cands)
    recall = len({c.i for c in hits}) / len(truth)
    assert precision >= 0.95, (precision, [c for c in cands if c not in hits][:5])
    assert recall >= 0.9, recall
    # the exact revisit is the best match of most frames
    assert sum((c.i, c.j) in truth for c in hits) >= 0.8 * len(hits)


def place_gap(c) -> int:
    """Frames between the places two frames of a loop see (0: the same place)."""
    d = (c.i - c.j) % LAP
    return min(d, LAP - d)


def test_encoder_descriptors_smooth_loop():
    """Descriptors as a smooth function of the place (as pooled encoder tokens are), two laps, noisy."""
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(6, 64))
    common = 5 * rng.normal(size=64)  # what every frame shares: removed by centring
    store = DescriptorStore()
    for i in range(3 * LAP):
        a = 2 * np.pi * (i % LAP) / LAP
        f = common + sum(basis[2 * k] * np.cos((k + 1) * a) + basis[2 * k + 1] * np.sin((k + 1) * a)
                         for k in range(3))
        store.add(i, encoder_descriptor(f + rng.normal(0, 0.05, 64)))
    cands = find_loop_candidates(store.descriptors, store.frames, min_gap=40, top_k=2, min_similarity=0.9)
    assert cands and all(c.i - c.j >= 40 for c in cands)
    assert all(place_gap(c) <= 3 for c in cands)
    assert {c.i for c in cands} >= set(range(LAP + 5, 3 * LAP))
    sims = [c.similarity for c in cands]
    assert sims == sorted(sims, reverse=True)
    # uncentred, the shared component makes places half a lap apart look alike; centred, they don't

    def far(cs):
        return [c for c in cs if place_gap(c) > 10]

    everything = dict(min_gap=40, top_k=10_000, min_similarity=0.9)
    assert far(find_loop_candidates(store.descriptors, store.frames, center=False, **everything))
    assert not far(find_loop_candidates(store.descriptors, store.frames, **everything))

def test_min_gap_excludes_every_close_pair():
    x = np.tile(np.eye(4, dtype=np.float32)[0], (50, 1))  # all frames identical
    cands = find_loop_candidates(x, min_gap=10, top_k=100, min_similarity=-1.0, center=False)
    assert cands and min(c.i - c.j for c in cands) == 10
    assert len(cands) == sum(max(0, i - 10 + 1) for i in range(50))


def test_revisit_pairs_ground_truth():
    a = 2 * np.pi * np.arange(2 * LAP) / LAP
    pos = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
    pairs = revisit_pairs(pos, radius=1e-6, min_gap=10)
    assert pairs == {(i, i - LAP) for i in range(LAP, 2 * LAP)}


def test_bad_settings():
    with pytest.raises(TTT3RError, match="min_gap >= 1"):
        find_loop_candidates(np.eye(3), min_gap=0)
    with pytest.raises(ValueError, match="increasing"):
        find_loop_candidates(np.eye(3), frames=[0, 2, 1])


def test_block_search_equals_every_pair_by_hand():
    """More frames than one block: the candidates are exactly those of the full (N, N) cosine matrix,
    each later frame's top_k most similar older frames at least min_gap away and above the threshold."""
    from ttt3r.loops.retrieval import BLOCK

    rng = np.random.default_rng(3)
    n, d, gap, k, thr = BLOCK + 137, 12, 40, 2, 0.3
    base = rng.normal(size=(30, d))
    x = base[rng.integers(0, 30, n)] + 0.5 * rng.normal(size=(n, d))  # revisits of 30 places
    frames = np.cumsum(rng.integers(1, 3, n))
    got = find_loop_candidates(x, frames, min_gap=gap, top_k=k, min_similarity=thr)
    y = x - x.mean(axis=0)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    full = y @ y.T
    want = set()
    for a in range(n):
        ok = [b for b in range(n) if frames[a] - frames[b] >= gap and full[a, b] >= thr]
        want |= {(int(frames[a]), int(frames[b])) for b in sorted(ok, key=lambda b: -full[a, b])[:k]}
    assert len(want) > BLOCK  # candidates from more than one block
    assert {(c.i, c.j) for c in got} == want and len(got) == len(want)
    for c in got:
        a, b = np.searchsorted(frames, c.i), np.searchsorted(frames, c.j)
        assert c.similarity == pytest.approx(full[a, b], abs=1e-5)
    assert [c.similarity for c in got] == sorted((c.similarity for c in got), reverse=True)


def test_one_candidate_per_group_pair_by_hand():
    """With groups (chunks), exactly the most similar valid pair of every group pair of the full
    cosine matrix, over more than one block, with empty groups and uneven group sizes; ordered by
    each later group's rank (its best first), then similarity; a cap keeps a prefix of that order."""
    from ttt3r.loops.retrieval import BLOCK

    rng = np.random.default_rng(5)
    n, d, gap, thr = BLOCK + 201, 10, 30, 0.2
    base = rng.normal(size=(25, d))
    x = base[rng.integers(0, 25, n)] + 0.6 * rng.normal(size=(n, d))
    frames = np.cumsum(rng.integers(1, 3, n))
    groups = np.sort(rng.choice([0, 1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13], n))  # 3 and 8 empty
    got = find_loop_candidates(x, frames, min_gap=gap, min_similarity=thr, groups=groups)
    y = x - x.mean(axis=0)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    full = y @ y.T
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    for a in range(n):
        for b in range(n):
            if frames[a] - frames[b] >= gap and full[a, b] >= thr:
                key = (int(groups[a]), int(groups[b]))
                if key not in best or full[a, b] > best[key][0]:
                    best[key] = (float(full[a, b]), int(frames[a]), int(frames[b]))
    assert len(best) > 40
    assert {(c.i, c.j) for c in got} == {(i, j) for _, i, j in best.values()} and len(got) == len(best)
    pos = {int(f): k for k, f in enumerate(frames)}
    for c in got:
        assert c.similarity == pytest.approx(full[pos[c.i], pos[c.j]], abs=1e-5)
    # the order: rank of the pair among its later group's pairs (by similarity), then similarity
    rank = {}
    for g in {k[0] for k in best}:
        mine = sorted((v for k, v in best.items() if k[0] == g), key=lambda v: -v[0])
        rank |= {(i, j): r for r, (_, i, j) in enumerate(mine)}
    keys = [(rank[(c.i, c.j)], -c.similarity) for c in got]
    assert keys == sorted(keys)
    assert rank[(got[0].i, got[0].j)] == 0 and rank[(got[-1].i, got[-1].j)] > 0
    capped = find_loop_candidates(x, frames, min_gap=gap, min_similarity=thr, groups=groups, max_candidates=7)
    assert capped == got[:7]
    n_later = len({k[0] for k in best})
    assert len({groups[pos[c.i]] for c in got[:n_later]}) == n_later  # the first round: one per later group


def test_groups_must_be_non_decreasing():
    with pytest.raises(ValueError, match="groups"):
        find_loop_candidates(np.eye(3), min_gap=1, groups=[0, 1, 0])
