"""Gaussian Instance Tracing: per Gaussian and view, its traced weight on each instance patch, checked
against the engine's torch reference; the visibility rule; the store's bookkeeping."""

import numpy as np
import pytest
import torch

from gs_core.engine import project, trace
from gs_core.methods.trace3d import GITStore, make_patches, trace_view
from gs_core.methods.trace3d.git import MIN_LABELLED_SHARE

from trace3d_scenes import cam, cat_scenes, make_scene, square

H, W = 48, 64


def _rect_masks(shift: int = 0) -> np.ndarray:
    """Three masks: two overlapping rectangles and a third apart; leaves pixels uncovered."""
    m = np.zeros((3, H, W), bool)
    m[0, 5:30, 5 + shift:35 + shift] = True
    m[1, 15:40, 25 + shift:55 + shift] = True
    m[2, 36:46, 2:20] = True
    return m


@pytest.fixture(scope="module", params=["3dgs", "2dgs"])
def traced(request):
    """A plane of 361 splats of mixed opacity seen by two cameras; their patches and GIT."""
    rng = np.random.default_rng(0)
    pts = square((0, 0, 0), half=0.9, spacing=0.1)
    pts[:, 2] += rng.normal(0, 0.02, len(pts))
    scene = make_scene(pts, 0.07, kind=request.param, opacity=rng.uniform(0.3, 0.95, len(pts)))
    cams = [cam((0.3, -0.5, 2.5), name="a"), cam((-0.6, 0.4, 2.2), (0.1, 0, 0), name="b")]
    patches = [make_patches(_rect_masks(0), 1), make_patches(_rect_masks(6), 1)]
    g = scene.to_gaussians()
    projs = [project(g, c) for c in cams]
    store = GITStore(len(scene))
    for proj, p in zip(projs, patches):
        store.add(trace_view(proj, p))
    return scene, projs, patches, store


def _reference(proj, patches) -> tuple[np.ndarray, np.ndarray]:
    """[N, p] sum of alpha*T over each patch's pixels, and [N] over every pixel (torch backend)."""
    per_patch = []
    for j in range(patches.num_patches):
        onehot = torch.from_numpy((patches.patch_map == j).astype(np.float32))
        per_patch.append(trace(proj, onehot, backend="torch").weighted_sum[:, 0].double().numpy())
    whole = trace(proj, torch.ones(H, W), backend="torch").weight_sum.double().numpy()
    return np.stack(per_patch, 1), whole


def test_patches_of_the_fixture(traced):
    _, _, patches, store = traced
    assert [p.num_patches for p in patches] == [4, 4]  # A only, A and B, B only, C
    assert all((p.patch_map == -1).any() for p in patches)  # some pixels are uncovered


def test_raw_weights_match_brute_force(traced):
    scene, projs, patches, store = traced
    raw = store.weights(normalise=False, labelled_only=False).toarray()
    off = store.offsets
    straddlers = 0
    for k, (proj, p) in enumerate(zip(projs, patches)):
        ref, whole = _reference(proj, p)
        v = store.views[k]
        seen = v.seen
        assert len(seen) > 50
        got = raw[:, off[k]:off[k + 1]]
        # A pixel whose alpha lies within the exp's rounding of the 1/255 cut-off is blended by one backend
        # and skipped by the other (a discrete decision, not a sum's rounding): such Gaussians (their pixel
        # counts differ) must be rare and off by less than one cut-off pixel; the rest agree to rounding.
        ones = torch.ones(H, W)
        flipped = (trace(proj, ones, backend="torch").hits != trace(proj, ones).hits).numpy()[seen]
        assert flipped.sum() <= max(1, len(seen) // 100)
        np.testing.assert_array_less(np.abs(got[seen][flipped] - ref[seen][flipped]).sum(1), 1 / 255)
        np.testing.assert_array_less(np.abs(v.total[flipped] - whole[seen][flipped]), 1 / 255)
        kept = seen[~flipped]
        np.testing.assert_allclose(got[kept], ref[kept], rtol=1e-4, atol=1e-6 * ref.max())
        np.testing.assert_allclose(v.total[~flipped], whole[kept], rtol=1e-4, atol=1e-6 * whole.max())
        assert (got[np.setdiff1d(np.arange(len(scene)), seen)] == 0).all()  # only seen Gaussians have entries
        # a handful of Gaussians with weight on several patches, entry by entry from the ViewGIT
        multi = kept[(ref[kept] > 1e-3).sum(1) >= 2][:6]
        straddlers += len(multi)
        for g in multi:
            e = v.gaussians == g
            entries = dict(zip(v.patches[e].tolist(), v.weights[e].tolist()))
            for j in range(p.num_patches):
                assert entries.get(j, 0.0) == pytest.approx(ref[g, j], rel=1e-4, abs=1e-7)
    assert straddlers >= 6


def test_normalised_rows_sum_to_one_per_view(traced):
    _, _, _, store = traced
    W_ = store.weights(normalise=True, labelled_only=False).toarray()
    off = store.offsets
    for k in range(len(store.views)):
        block = W_[:, off[k]:off[k + 1]]
        s = block.sum(1)
        has = np.unique(store.views[k].gaussians)
        assert len(has) > 50
        np.testing.assert_allclose(s[has], 1.0, rtol=1e-9)
        assert (s[np.setdiff1d(np.arange(store.num_gaussians), has)] == 0).all()
        assert (block >= 0).all()


def test_labelled_only_drops_mostly_uncovered_pairs(traced):
    _, _, _, store = traced
    kept = store.weights(normalise=True, labelled_only=True).toarray()
    off = store.offsets
    dropped = 0
    for k, v in enumerate(store.views):
        labelled = np.bincount(v.gaussians, v.weights.astype(np.float64), minlength=store.num_gaussians)
        total = np.zeros(store.num_gaussians)
        total[v.seen] = v.total
        good = np.unique(v.gaussians[labelled[v.gaussians] >= MIN_LABELLED_SHARE * total[v.gaussians]])
        bad = np.setdiff1d(np.unique(v.gaussians), good)
        block = kept[:, off[k]:off[k + 1]]
        np.testing.assert_allclose(block[good].sum(1), 1.0, rtol=1e-9)
        assert (block[bad] == 0).all()
        dropped += len(bad)
    assert dropped > 0  # the fixture has Gaussians mostly over uncovered pixels


def test_hard_keeps_the_heaviest_patch(traced):
    _, _, _, store = traced
    raw = store.weights(normalise=False, labelled_only=False).toarray()
    hard = store.weights(normalise=False, labelled_only=False, hard=True).toarray()
    off = store.offsets
    for k in range(len(store.views)):
        r, h = raw[:, off[k]:off[k + 1]], hard[:, off[k]:off[k + 1]]
        has = r.sum(1) > 0
        assert (h[has].sum(1) == 1).all() and (h[~has] == 0).all()
        assert np.array_equal(h[has].argmax(1), r[has].argmax(1))
    rows = np.array([7, 3, 200])
    np.testing.assert_array_equal(store.weights(normalise=False, labelled_only=False, rows=rows).toarray(), raw[rows])


def test_store_bookkeeping(traced):
    _, _, patches, store = traced
    assert store.num_gaussians == 361
    assert store.offsets.tolist() == [0, 4, 8] and store.num_patches == 8
    assert store.patch_view.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert store.visible_pairs == sum(len(v.seen) for v in store.views)
    expected = sum(a.nbytes for v in store.views for a in (v.gaussians, v.patches, v.weights, v.seen, v.total))
    assert store.nbytes == expected
    # per seen Gaussian: int32 id + float32 total; per entry: int32 Gaussian, int16 patch, float32 weight
    assert store.nbytes == sum(8 * len(v.seen) + 10 * len(v.gaussians) for v in store.views)
    assert all(v.patches.dtype == np.int16 and v.gaussians.dtype == np.int32 for v in store.views)
    seen = store.seen_matrix().toarray()
    assert seen.shape == (361, 2)
    for k, v in enumerate(store.views):
        assert set(np.flatnonzero(seen[:, k])) == set(v.seen.tolist())
        assert len(np.unique(v.seen)) == len(v.seen)
        assert v.num_patches == patches[k].num_patches
        assert v.patches.min() >= 0 and v.patches.max() < v.num_patches
    empty = GITStore(5)
    assert empty.offsets.tolist() == [0] and empty.num_patches == 0 and empty.weights().shape == (5, 0)


def test_hidden_panel_is_not_seen():
    """A 3-layer opaque wall seen head-on hides a small opaque panel 0.3 m behind it: the panel's
    splats blend into the wall's patch with a little weight but are not seen; the wall's front is."""
    wall = [square((0, 0, -0.02 * i), half=0.6, spacing=0.1) for i in range(3)]
    panel = square((0, 0, -0.3), half=0.2, spacing=0.1)
    n_front = len(wall[0])
    # splats a bit apart (scale 0.05 at spacing 0.1), so some light reaches the panel: weight > 0
    scene = cat_scenes(*(make_scene(w, 0.05, opacity=0.95) for w in wall), make_scene(panel, 0.07, opacity=0.95))
    owner = np.repeat([0, 0, 0, 1], [len(wall[0]), len(wall[1]), len(wall[2]), len(panel)])
    proj = project(scene.to_gaussians(), cam((0, 0.01, 3.0), up=(0, 1, 0)))
    mask = np.zeros((1, H, W), bool)
    mask[:, :, :] = True  # one mask over the whole image
    git = trace_view(proj, make_patches(mask, 1))
    panel_ids = np.flatnonzero(owner == 1)
    dense = trace(proj, torch.ones(H, W), backend="torch")
    assert (dense.weight_sum.numpy()[panel_ids] > 0).all()  # they do receive weight ...
    assert (proj.visible.numpy()[panel_ids]).all()
    assert not np.isin(panel_ids, git.seen).any()  # ... but are not seen
    assert not np.isin(panel_ids, git.gaussians).any()
    assert np.isin(np.arange(n_front), git.seen).all()  # every front splat of the wall is seen


def test_many_patches_keep_their_ids():
    """Past 32767 patches the local ids no longer fit int16: every pixel of a 200 x 200 view is
    its own patch, and the entries of the last rows carry ids above 32767, exactly."""
    from gs_core.methods.trace3d import InstancePatches

    h = w = 200
    scene = make_scene(square((0, 0, 0), half=0.8, spacing=0.1), 0.08, opacity=0.9)  # fills the view
    proj = project(scene.to_gaussians(), cam((0, 0.01, 1.0), up=(0, 1, 0), width=w, height=h, fov=70))
    pm = np.arange(h * w, dtype=np.int32).reshape(h, w)
    patches = InstancePatches(pm, np.ones((h * w, 1), bool), np.ones(h * w, np.int64), np.zeros(1, np.int64))
    v = trace_view(proj, patches, top_k=4)
    assert v.num_patches == h * w and v.patches.dtype == np.int32
    big = np.flatnonzero(v.patches > 32767)
    assert len(big) > 0
    e = big[np.argmax(v.weights[big])]
    onehot = torch.from_numpy((pm == v.patches[e]).astype(np.float32))
    ref = trace(proj, onehot, backend="torch").weighted_sum[v.gaussians[e], 0].item()
    assert v.weights[e] == pytest.approx(ref, rel=1e-4)
    store = GITStore(len(scene), [v])
    raw = store.weights(normalise=False, labelled_only=False)
    assert raw[v.gaussians[e], v.patches[e]] == pytest.approx(v.weights[e])


def test_trace_view_is_reproducible():
    """Traces of the same view give the same GIT, bit for bit, on 1 and 2 threads and run after run
    (cached views of an interrupted prepare are mixed with fresh ones, and ids must not depend on
    the run)."""
    from gs_core.engine import Gaussians

    gen = torch.Generator().manual_seed(2)
    n = 2000
    means = torch.randn(n, 3, generator=gen) * 0.8
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1)
    scales = torch.exp(torch.randn(n, 3, generator=gen) * 1.2 - 3.5) * 4
    g = Gaussians(means=means, quats=quats, scales=scales, opacities=torch.rand(n, generator=gen))
    proj = project(g, cam((0.3, -3.0, 0.6), up=(0, 0, 1), fov=70))
    patches = make_patches(_rect_masks(0), 1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        first = trace_view(proj, patches)
        torch.set_num_threads(2)
        runs = [trace_view(proj, patches) for _ in range(10)]
    finally:
        torch.set_num_threads(threads)
    for again in runs:
        for name in ("gaussians", "patches", "weights", "seen", "total"):
            np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)


def test_occluders_hide_what_is_behind_them_and_get_no_entries():
    """A block's trace with the scene around it as occluders (``trace_all(..., occluders=)``): the
    panel alone is seen; behind the wall, traced as occluders, it is not, and the store holds the
    panel's Gaussians only. The cull keeps the wall in front of the panel and drops a square behind
    it and one off to the side."""
    from gs_core.methods.trace3d import Trace3DConfig
    from gs_core.methods.trace3d.git import occluders_in_view, trace_all

    wall = cat_scenes(*(make_scene(square((0, 0, -0.02 * i), half=0.6, spacing=0.1), 0.05, opacity=0.95)
                        for i in range(3)))
    panel = make_scene(square((0, 0, -0.3), half=0.2, spacing=0.1), 0.07, opacity=0.95)
    c = cam((0, 0.01, 3.0), up=(0, 1, 0))
    mask = np.ones((1, H, W), bool)
    patches = [make_patches(mask, 1)]
    alone, _ = trace_all(panel, [c], patches, Trace3DConfig())
    assert np.isin(np.arange(len(panel)), alone.views[0].seen).all()
    hidden, _ = trace_all(panel, [c], patches, Trace3DConfig(), occluders=wall)
    assert hidden.num_gaussians == len(panel)
    assert len(hidden.views[0].seen) == 0 and len(hidden.views[0].gaussians) == 0
    behind = make_scene(square((0, 0, -1.0), half=0.2, spacing=0.1), 0.05)
    aside = make_scene(square((5.0, 0, 0.5), half=0.2, spacing=0.1), 0.05)
    others = cat_scenes(wall, behind, aside)
    kept = occluders_in_view(panel.to_gaussians(), others.to_gaussians(), c).numpy()
    over_panel = np.flatnonzero(np.abs(wall.means[:, :2]).max(1) <= 0.2 + 1e-6)
    assert np.isin(over_panel, kept).all() and (kept < len(wall)).all()  # the wall in front only


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_occluder_cells_skip_cubes_without_changing_the_occluders(seed):
    """The cubes of ``occluder_cells`` only skip work: the occluders found through them are those
    the test on every Gaussian finds, for cameras inside the cloud, at its edge and outside it."""
    from gs_core.methods.trace3d.git import occluder_cells, occluders_in_view

    rng = np.random.default_rng(seed)
    others = make_scene(rng.uniform(-4, 4, (3000, 3)), rng.uniform(0.01, 0.3, 3000)).to_gaussians()
    own = make_scene(rng.uniform(-0.5, 0.5, (200, 3)), 0.05).to_gaussians()
    cells = occluder_cells(others)
    for eye in [(0.3, -2.0, 0.5), (4.5, 0.2, 0.1), (0, 9.0, 3.0), (-2.0, -2.0, -3.5)]:
        c = cam(eye)
        plain = occluders_in_view(own, others, c).numpy()
        assert len(plain) > 0
        assert np.array_equal(occluders_in_view(own, others, c, cells).numpy(), plain)
