"""Consistent instance maps (Trace3D Sec. 3.3): planted table-top scenes, masks made per view from the
ground truth, then clean masks, a hierarchy flip and a mixed patch; the merge tree's cuts."""

from dataclasses import replace

import numpy as np
import pytest

from gs_core.engine import project
from gs_core.methods.trace3d import GITStore, MergeTree, consistent_instances, make_patches, trace_view
from gs_core.methods.trace3d.consistency import same_partition

from trace3d_scenes import cam, cat_scenes, gt_masks, make_scene, square

TABLE, A, B, C = 0, 1, 2, 3
CENTRES = {A: (-0.3, 0.2), B: (0.3, 0.25), C: (0.05, -0.3)}
HALVES = {A: 0.15, B: 0.12, C: 0.1}


def table_top(spacing: float, views: int = 5):
    """A flat table (square of half-size 0.6 at z = 0) with three flat objects lying 3 cm above it,
    all sampled at one splat density; ``views`` cameras around and above. -> (scene, owner, cams)."""
    surfaces = [square((0, 0, 0), half=0.6, spacing=spacing)]
    surfaces += [square((*CENTRES[o], 0.03), half=HALVES[o], spacing=spacing) for o in (A, B, C)]
    scene = cat_scenes(*(make_scene(s, 0.7 * spacing) for s in surfaces))
    owner = np.repeat(np.arange(4), [len(s) for s in surfaces])
    angles = np.linspace(0, 2 * np.pi, views + 1)[:-1] + 0.3
    cams = [cam((np.cos(a), np.sin(a), 1.8), name=f"v{k}") for k, a in enumerate(angles)]
    return scene, owner, cams


def associate(scene, cams, stacks):
    g = scene.to_gaussians()
    store, patches = GITStore(len(scene)), []
    for c, masks in zip(cams, stacks):
        patches.append(make_patches(masks, 1))
        store.add(trace_view(project(g, c), patches[-1]))
    return consistent_instances(store), patches


class Planted:
    def __init__(self, spacing: float, views: int = 5):
        self.scene, self.owner, self.cams = table_top(spacing, views)
        per_view = [gt_masks(self.scene, self.owner, c) for c in self.cams]
        self.stacks = [m for m, _ in per_view]
        self.owners = [ids for _, ids in per_view]
        assert all(ids == [TABLE, A, B, C] for ids in self.owners)  # every object in every view

    def region(self, k: int, o: int) -> np.ndarray:  # [H, W] ground-truth mask of owner o in view k
        return self.stacks[k][self.owners[k].index(o)]

    def exposed_table(self) -> np.ndarray:  # [N] table splats no object lies over (plus a margin)
        xy = self.scene.means[:, :2]
        under = np.zeros(len(xy), bool)
        for o in (A, B, C):
            under |= (np.abs(xy - CENTRES[o]) <= HALVES[o] + 0.05).all(1)
        return (self.owner == TABLE) & ~under

    def mixed(self, k0: int, small: int = C, support: int = TABLE) -> list[np.ndarray]:
        """Masks where view ``k0`` has one mask for ``small`` and its ``support`` together."""
        stacks = list(self.stacks)
        merged = self.region(k0, small) | self.region(k0, support)
        stacks[k0] = np.stack([merged] + [self.region(k0, o) for o in (A, B, C) if o != small])
        return stacks


@pytest.fixture(scope="module")
def planted():
    return Planted(spacing=0.025)


def _ids(inst, patches, k, region) -> set:
    return set(np.unique(inst.view_map(k, patches[k].patch_map)[region]).tolist())


def test_clean_masks_one_id_per_object(planted):
    inst, patches = associate(planted.scene, planted.cams, planted.stacks)
    assert inst.num_instances == 4
    assert inst.patch_ids.shape == (inst.store.num_patches,)
    ids = {}
    for o in (TABLE, A, B, C):
        per_view = [_ids(inst, patches, k, planted.region(k, o)) for k in range(len(planted.cams))]
        assert all(len(s) == 1 for s in per_view), (o, per_view)  # one id over the object's mask ...
        assert len(set.union(*per_view)) == 1, (o, per_view)  # ... the same in every view
        ids[o] = per_view[0].pop()
    assert len(set(ids.values())) == 4
    for k, p in enumerate(patches):  # pixels no mask covers stay -1
        vm = inst.view_map(k, p.patch_map)
        assert np.array_equal(vm >= 0, planted.stacks[k].any(0))
    # on the Gaussians: every splat of an object, and every exposed table splat, carries its id
    for o in (A, B, C):
        assert (inst.labels[planted.owner == o] == ids[o]).all(), o
    exposed = planted.exposed_table()
    assert exposed.sum() > 1000 and (inst.labels[exposed] == ids[TABLE]).all()
    assert ((inst.confidence >= 0) & (inst.confidence <= 1 + 1e-9)).all()
    assert (inst.confidence[inst.labels < 0] == 0).all()


def test_hierarchy_flip_parts_end_in_the_object(planted):
    """View 0 shows object A as two part masks (its left and right halves), the others whole."""
    k0 = 0
    left = (planted.owner == A) & (planted.scene.means[:, 0] < CENTRES[A][0])
    owner = planted.owner.copy()
    owner[(planted.owner == A) & ~left] = 4  # the right half, a part of its own in view 0
    masks, owners = gt_masks(planted.scene, owner, planted.cams[k0])
    assert owners == [TABLE, A, B, C, 4]
    stacks = list(planted.stacks)
    stacks[k0] = masks
    inst, patches = associate(planted.scene, planted.cams, stacks)
    a_ids = set().union(*(_ids(inst, patches, k, planted.region(k, A)) for k in range(1, 5)))
    assert len(a_ids) == 1
    part_ids = [_ids(inst, patches, k0, masks[owners.index(p)]) for p in (A, 4)]
    assert part_ids == [a_ids, a_ids]
    assert inst.num_instances == 4
    assert (inst.labels[planted.owner == A] == next(iter(a_ids))).all()


@pytest.mark.parametrize("k0", range(5))
def test_mixed_patch_does_not_swallow_the_small_object(planted, k0):
    """View ``k0`` has one mask for object C and the table under it: C keeps its own id in the
    other views and on its Gaussians; the mixed patch takes the table's id."""
    inst, patches = associate(planted.scene, planted.cams, planted.mixed(k0))
    others = [k for k in range(5) if k != k0]
    c_ids = set().union(*(_ids(inst, patches, k, planted.region(k, C)) for k in others))
    t_ids = set().union(*(_ids(inst, patches, k, planted.region(k, TABLE)) for k in others))
    assert len(c_ids) == 1 and len(t_ids) == 1 and c_ids != t_ids
    (c_id,), (t_id,) = c_ids, t_ids
    assert _ids(inst, patches, k0, planted.region(k0, C) | planted.region(k0, TABLE)) == {t_id}
    assert np.mean(inst.labels[planted.owner == C] == c_id) >= 0.8
    assert not (inst.labels[planted.exposed_table()] == c_id).any()


@pytest.mark.parametrize("k0", range(5))
def test_mixed_patch_coarse_small_object(k0):
    """The same with a coarsely sampled small object (25 splats): its Gaussians' footprints spill
    onto the table, so even in its own patch only about two thirds of them agree (self-agreement
    0.6-0.7 against the table's 0.9+). Scored relative to the *larger* self-agreement (``max``) the
    mixed view does not merge it into the table; relative to their geometric mean it did (0.51-0.53
    > theta, an expected failure until the default changed)."""
    coarse = Planted(spacing=0.05)
    inst, patches = associate(coarse.scene, coarse.cams, coarse.mixed(k0))
    others = [k for k in range(5) if k != k0]
    c_ids = set().union(*(_ids(inst, patches, k, coarse.region(k, C)) for k in others))
    t_ids = set().union(*(_ids(inst, patches, k, coarse.region(k, TABLE)) for k in others))
    assert len(c_ids) == 1 and c_ids != t_ids


# ---- the merge tree ----------------------------------------------------------------------------

def _refines(fine: np.ndarray, coarse: np.ndarray) -> bool:
    """Every cluster of ``fine`` lies inside one cluster of ``coarse``."""
    pairs = np.unique(np.stack([fine, coarse]), axis=1)
    return pairs.shape[1] == len(np.unique(fine))


def test_cut_is_monotone_on_the_planted_tree(planted):
    inst, _ = associate(planted.scene, planted.cams, planted.mixed(2))
    tree, view = inst.tree, inst.store.patch_view
    assert len(tree.score) > 0 and tree.score.min() >= 0.1  # recorded down to the floor
    assert np.array_equal(tree.cut(0.5, view), inst.patch_ids)
    thresholds = np.linspace(1.1, 0.0, 23)
    for pv in (None, view):
        cuts = [tree.cut(t, pv) for t in thresholds]
        counts = [len(np.unique(c)) for c in cuts]
        assert counts == sorted(counts, reverse=True)
        assert all(_refines(f, c) for f, c in zip(cuts, cuts[1:]))
        assert counts[0] > counts[-1]  # the grid spans more than one partition
    assert len(np.unique(tree.cut(2.0))) == tree.num_patches  # above every score: no merge
    assert len(np.unique(tree.cut(0.0))) == tree.num_patches - len(tree.score)  # every recorded merge


def test_cut_is_monotone_on_random_trees():
    rng = np.random.default_rng(0)
    for _ in range(300):
        P = int(rng.integers(2, 10))
        view = rng.integers(0, int(rng.integers(1, 4)), P)
        active, into, other = list(range(P)), [], []
        while len(active) > 1 and rng.random() > 0.1:
            a, b = sorted(rng.choice(active, 2, replace=False).tolist())
            into.append(a), other.append(b), active.remove(b)
        tree = MergeTree(P, np.array(into, np.int64), np.array(other, np.int64),
                         np.sort(rng.random(len(into)))[::-1])
        th = np.sort(rng.random(5))[::-1]
        for pv in (None, view):
            cuts = [tree.cut(t, pv) for t in th]
            assert all(_refines(f, c) for f, c in zip(cuts, cuts[1:]))
            for c in cuts:  # dense ids
                assert set(c.tolist()) == set(range(len(np.unique(c))))


def test_cut_absorbs_clusters_no_other_view_confirms():
    # patches 0, 1 (views 0, 1) merge at 0.9; patch 2 (view 0 alone) would join at 0.3; 3 (view 1) and
    # 4 (view 2) would join at 0.2
    tree = MergeTree(5, np.array([0, 0, 3]), np.array([1, 2, 4]), np.array([0.9, 0.3, 0.2]))
    assert tree.cut(0.5).tolist() == [0, 0, 1, 2, 3]
    view = np.array([0, 1, 0, 1, 2])
    # 2 is one view's patch alone: follows the tree into 0's cluster; 3 and 4 are single-view too
    assert tree.cut(0.5, view).tolist() == [0, 0, 0, 1, 1]
    tree2 = MergeTree(5, np.array([0, 3, 0]), np.array([1, 4, 3]), np.array([0.9, 0.8, 0.3]))
    # {0, 1} and {3, 4} are both confirmed by two views: the 0.3 merge stays undone
    assert tree2.cut(0.5, view).tolist() == [0, 0, 1, 2, 2]


def test_same_partition():
    a = np.array([0, 0, 1, 2, 2])
    assert same_partition(a, np.array([5, 5, 3, 9, 9]))
    assert same_partition(a, a)
    assert not same_partition(a, np.array([0, 0, 1, 2, 3]))  # finer
    assert not same_partition(a, np.array([0, 0, 0, 2, 2]))  # coarser
    assert not same_partition(a, np.array([0, 1, 1, 2, 2]))  # crossing


def dense_agglomerate(stats, config):
    """The agglomeration in its first, dense form ([P, P] pooled sums, rows and columns added on a
    merge, every row's best kept): the reference the sparse graph form must reproduce. ``view``: one
    dense numerator per view (the products of ``stats.votes``' columns of that view), each view's pairs
    divided by the larger of the two clusters' self-agreements in that view."""
    num, den = stats.numerator.toarray(), stats.pairs()
    sup = stats.support()
    P = len(num)
    active = np.ones(P, bool)
    counts = stats.counts.copy()
    if config.normalise == "view":
        votes = stats.votes.toarray()
        num_v = np.stack([votes[:, stats.column_view == v] @ votes[:, stats.column_view == v].T
                          for v in range(counts.shape[1])])  # [V, P, P]

    def selfsim_of(i):
        return num[i, i] / den[i, i] if den[i, i] > 0 else np.nan

    selfsim = np.array([selfsim_of(i) for i in range(P)])

    def row_scores(i):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = num[i] / den[i]
            if config.normalise == "geometric":
                r = r / np.sqrt(selfsim[i] * selfsim)
            elif config.normalise == "max":
                r = r / np.maximum(selfsim[i], selfsim)
            elif config.normalise == "view":
                self_v = np.nan_to_num(np.einsum("vpp->pv", num_v) / counts ** 2)  # [P, V], 0 where unseen
                pairs_v = counts[i] * counts  # [P, V]
                r = num[i] / np.einsum("pv,pv->p", pairs_v, np.maximum(self_v[i], self_v))
        r[~active | (sup[i] < config.min_views) | (den[i] <= 0) | ~np.isfinite(r)] = -np.inf
        r[i] = -np.inf
        return r if active[i] else np.full(P, -np.inf)

    into, other, score = [], [], []
    while True:
        rows = np.array([row_scores(i) for i in range(P)])
        i, j = np.unravel_index(np.argmax(rows), rows.shape)
        if rows[i, j] < config.floor:
            break
        a, b = min(i, j), max(i, j)
        into.append(a), other.append(b), score.append(rows[i, j])
        for m in (num, den, sup, *(num_v if config.normalise == "view" else ())):
            m[a] += m[b]
            m[:, a] += m[:, b]
        counts[a] += counts[b]
        active[b] = False
        selfsim[a] = selfsim_of(a)
    return into, other, score


@pytest.mark.parametrize("normalise", ["view", "max", "geometric"])
@pytest.mark.parametrize("stacks", ["clean", "mixed"])
def test_sparse_agglomeration_equals_the_dense_reference(planted, stacks, normalise):
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, agglomerate, patch_statistics

    masks = planted.stacks if stacks == "clean" else planted.mixed(1)
    inst, _ = associate(planted.scene, planted.cams, masks)
    config = ConsistencyConfig(normalise=normalise, separation=None)  # the reference knows Eq. 3 alone
    stats = patch_statistics(inst.store, config)
    tree = agglomerate(stats, config)
    into, other, score = dense_agglomerate(stats, config)
    assert len(into) > 10  # a real tree: the 5 views' patches merge into the 4 objects and on to groups
    assert tree.into.tolist() == into and tree.other.tolist() == other
    np.testing.assert_allclose(tree.score, score, rtol=1e-9)


def _random_votes(seed: int, P: int, V: int, ties: bool):
    """Random per-view votes of ``P`` patches over ``V`` views. ``ties``: every vote 1 and few columns
    (two a view), so many pairs score exactly alike and the greedy order rests on its tie-breaking."""
    from gs_core.methods.trace3d.consistency import PatchVotes

    rng = np.random.default_rng(seed)
    Q = 2 * V if ties else 3 * P
    column_view, row_view = rng.integers(0, V, Q), rng.integers(0, V, P)
    hit = (rng.random((P, Q)) < (0.4 if ties else 0.15)) & (column_view[None] != row_view[:, None])
    C = np.where(hit, 1.0 if ties else rng.random((P, Q)), 0.0)  # [P, Q] no votes on a patch's own view
    counts = np.stack([C[:, column_view == v].sum(1) for v in range(V)], 1)  # [P, V] plus unlabelled-elsewhere mass
    counts += (counts > 0) * (1.0 if ties else rng.integers(0, 2, counts.shape))
    mass = counts.sum(1) + 1.0
    good = ((counts >= 0.2 * mass[:, None]) & (counts > 0)).astype(np.float32)
    import scipy.sparse as sp
    return PatchVotes(sp.csr_matrix(C), counts, good, mass, column_patch=np.full(Q, -1), column_view=column_view)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed, P", [(0, 20), (1, 60), (2, 150), (3, 150)])
def test_view_rescoring_reuses_scores_bitwise(seed, P, ties, monkeypatch):
    """``normalise="view"`` rescores, in a row whose best partner merged, only the neighbours that
    merged since (``reuse``; here in every row, however short): the tree is bitwise the one of
    rescoring every pair, ties included (the tie cases have tens of equal merge scores, so a changed
    order would show), and without ties the dense reference's."""
    from gs_core.methods.trace3d import consistency
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, agglomerate

    monkeypatch.setattr(consistency, "REUSE_MIN_ROW", 0)

    stats = _random_votes(seed, P, 6, ties).statistics()
    config = ConsistencyConfig(min_views=1, floor=0.0)
    assert config.normalise == "view"  # the default
    tree, every = agglomerate(stats, config), agglomerate(stats, config, reuse=False)
    assert len(tree.score) >= P - 5  # floor 0: (nearly) a full tree
    if ties:
        assert len(tree.score) - len(np.unique(tree.score)) >= P // 4
    for f in ("into", "other", "score"):
        assert np.array_equal(getattr(tree, f), getattr(every, f))
    if not ties:  # the dense reference breaks ties its own way
        into, other, score = dense_agglomerate(stats, config)
        assert tree.into.tolist() == into and tree.other.tolist() == other
        np.testing.assert_allclose(tree.score, score, rtol=1e-9)


def test_min_share_drops_only_boundary_spill(planted):
    """Dropping votes under 2% of a patch's mass in a view keeps the numerator within its bound
    (2 x 0.02 of each view's agreement, so 0.04 x pairs) and leaves the instances unchanged."""
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, patch_statistics

    inst, _ = associate(planted.scene, planted.cams, planted.stacks)
    exact = patch_statistics(inst.store, ConsistencyConfig(min_share=0.0))
    pruned = patch_statistics(inst.store, ConsistencyConfig(min_share=0.02))
    lost = exact.numerator.toarray() - pruned.numerator.toarray()
    assert lost.min() >= -1e-9
    assert (lost <= 0.04 * exact.pairs() + 1e-9).all()
    assert lost.max() > 0  # something was dropped
    same = consistent_instances(inst.store, ConsistencyConfig(min_share=0.0))
    assert same_partition(same.patch_ids, inst.patch_ids)


@pytest.mark.parametrize("stacks", ["clean", "mixed"])
def test_views_first_gives_the_objects(planted, stacks):
    """Merging each view's patches first (the large-scene path) finds the same objects on the planted
    table top, and its tree records one run per view and one across views."""
    from gs_core.methods.trace3d.consistency import ConsistencyConfig

    masks = planted.stacks if stacks == "clean" else planted.mixed(1)
    inst, patches = associate(planted.scene, planted.cams, masks)
    first = consistent_instances(inst.store, ConsistencyConfig(views_first_above=0))
    assert same_partition(first.patch_ids, inst.patch_ids)
    assert set(first.tree.sequence.tolist()) <= set(range(len(planted.cams) + 1))
    assert (first.tree.sequence == len(planted.cams)).sum() > 0  # associations across views
    if stacks == "clean":  # both stages report progress, each ending complete
        calls = []
        consistent_instances(inst.store, ConsistencyConfig(views_first_above=0), lambda *a: calls.append(a))
        ends = {stage: (done, total) for stage, done, total in calls}
        assert ends["merging within views"] == (len(planted.cams), len(planted.cams))
        assert ends["associating patches"][0] == ends["associating patches"][1] > 0


def test_merges_within_views_are_the_same_whatever_order_the_views_finish():
    """merge_within_views on an executor finishing the views last to first (as a cluster may): the
    same tree as here, and each view's run is the one on its restricted votes."""
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, merge_within_views, patch_votes

    sent = []

    class Reversed:
        def map(self, fn, items, *shared):
            items = list(items)
            sent.append((items, shared))
            for i in reversed(range(len(items))):
                yield i, fn(items[i], *shared)

    from gs_core.methods.trace3d import ViewGIT

    rng = np.random.default_rng(5)  # 6 objects of 50 Gaussians, each view cuts each into 1-3 random pieces
    store, obj = GITStore(300), np.arange(300) // 50
    for k in range(6):
        _, p = np.unique(obj * 3 + rng.integers(0, rng.integers(1, 4), 300), return_inverse=True)
        g, w = np.arange(300, dtype=np.int32), (0.5 + rng.random(300)).astype(np.float32)
        store.add(ViewGIT(g, p.astype(np.int16), w, g, w.copy(), int(p.max()) + 1))
    config = ConsistencyConfig(views_first_above=0)
    votes, view = patch_votes(store, config), store.patch_view
    here = merge_within_views(votes, view, config)
    there = merge_within_views(votes, view, config, executor=Reversed())
    assert len(here.into) > 6 and set(here.sequence.tolist()) <= set(range(6))
    for f in ("into", "other", "score", "sequence"):
        assert np.array_equal(getattr(here, f), getattr(there, f))
    (items, shared), = sent  # the [Q] columns go once with the map, not with each view's votes
    assert votes.column_view is not None and shared[1][1] is votes.column_view
    assert len(items) == 6 and all(v.column_view is None and v.column_patch is None for _, v in items)
    rows = np.flatnonzero(view == 1)
    a, b = votes.statistics(rows), votes.restrict(rows).statistics()
    assert a.numerator.shape == (len(rows), len(rows)) and (a.numerator != b.numerator).nnz == 0


def _split_stats(roots=None, sliver: bool = False):
    """Six patches over four views that every other view puts together (Eq. 3 score 1 for every pair):
    views 0 and 1 each cut the pair apart (patches a0, b0 and a1, b1: each side's Gaussians vote for
    its own patch there), views 2 and 3 show it as one patch (m2, m3). With ``sliver``, view 1's b1 is
    a sliver: b's Gaussians land in a1 there too."""
    import scipy.sparse as sp
    from gs_core.methods.trace3d.consistency import PatchStatistics

    view = np.array([0, 0, 1, 1, 2, 3])
    a0, b0, a1, b1, m2, m3 = range(6)
    P, V = len(view), 4
    counts = np.ones((P, V))
    counts[np.arange(P), view] = 0.0
    C = np.zeros((P, P))  # each row's Gaussians (mass 1) voting for the patches of the other views
    for side, (p0, p1) in ((0, (a0, a1)), (1, (b0, b1))):
        C[p0, p1] = C[p1, p0] = 1.0
        C[p0, [m2, m3]] = C[p1, [m2, m3]] = 1.0
    C[[m2, m3], a0] = C[[m2, m3], b0] = C[[m2, m3], a1] = C[[m2, m3], b1] = 0.5
    C[m2, m3] = C[m3, m2] = 1.0
    mass = np.ones(P)
    if sliver:  # b1 holds a tenth of b's Gaussians
        C[[b0, m2, m3], a1] += C[[b0, m2, m3], b1]
        C[[b0, m2, m3], b1] = 0.0
        mass[b1] = 0.1
        C[b1] *= 0.1
        counts[b1] *= 0.1
    own = np.zeros((P, V))
    own[np.arange(P), view] = mass
    root_rows = None if roots is None else [np.array([r]) for r in roots]
    return PatchStatistics(sp.csr_matrix(counts @ counts.T), counts, (counts > 0).astype(np.float32),
                           mass, own, root_rows, sp.csr_matrix(C), np.arange(P), view.astype(np.int64)), view


def test_separation_keeps_a_gap_half_the_views_see():
    """Eq. 3 alone merges everything; with a separation share above the merged share (2 of 4 views),
    the gap views 0 and 1 see survives the cut at theta, and the tree still joins the two lower down."""
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, agglomerate

    stats, view = _split_stats()
    plain = ConsistencyConfig(normalise="none", separation=None)
    assert len(np.unique(agglomerate(stats, plain).cut(plain.theta))) == 1
    config = ConsistencyConfig(normalise="none", separation=0.6)
    tree = agglomerate(stats, config)
    cut = tree.cut(config.theta)
    assert cut[0] != cut[1] and cut[2] != cut[3]  # each view's two patches stay apart
    assert len(np.unique(cut)) == 2
    assert cut[0] == cut[2] or cut[0] == cut[3]  # a with a, b with b
    assert len(np.unique(tree.cut(config.floor))) == 1  # joined at a coarser level
    # a share below the merged share (2 of 4 views merge them) lets the majority merge them
    assert len(np.unique(agglomerate(stats, replace(config, separation=0.4)).cut(config.theta))) == 1


def test_separation_counts_no_gap_where_one_side_is_a_sliver():
    """A view whose patch of one side holds few of that side's Gaussians (a jittered sliver: b's
    Gaussians land in a1 in view 1) does not cut the pair apart: one gap view of four, merged share
    0.75 above the share, one instance."""
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, agglomerate

    stats, _ = _split_stats(sliver=True)
    config = ConsistencyConfig(normalise="none", separation=0.6)
    assert len(np.unique(agglomerate(stats, config).cut(config.theta))) == 1
    assert len(np.unique(agglomerate(stats, replace(config, separation=0.8)).cut(config.theta))) == 2


def test_separation_ignores_a_split_inside_one_mask():
    """Where the view's own masks hold both patches (a part and its object: one root), the cut is
    not a gap: the same statistics with shared roots in views 0 and 1 merge into one instance."""
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, agglomerate

    stats, _ = _split_stats(roots=[0, 0, 1, 1, 2, 3])
    config = ConsistencyConfig(normalise="none", separation=0.6)
    assert len(np.unique(agglomerate(stats, config).cut(config.theta))) == 1


def test_separation_needs_the_own_views():
    import scipy.sparse as sp
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, PatchStatistics, agglomerate

    stats, _ = _split_stats()
    bare = PatchStatistics(stats.numerator, stats.counts, stats.good, stats.mass, stats.own)  # no votes
    with pytest.raises(ValueError, match="separation"):
        agglomerate(bare, ConsistencyConfig(separation=0.5))
    assert isinstance(bare.numerator, sp.csr_matrix)


def test_separation_share_is_where_the_likelihood_ratio_changes_sign():
    from gs_core.methods.trace3d.consistency import P_MERGE, P_SPLIT, separation_share

    assert separation_share(0.3, 0.3) == pytest.approx(0.5)
    t = separation_share(P_SPLIT, P_MERGE)
    for m, s in ((t + 0.02, 1 - t - 0.02), (t - 0.02, 1 - t + 0.02)):  # just above / below the share
        llr = m * np.log((1 - P_SPLIT) / P_MERGE) - s * np.log((1 - P_MERGE) / P_SPLIT)
        assert (llr > 0) == (m > t)
    # one object rarely cut: each cut view weighs more, so merging needs a larger merged share
    assert separation_share(0.1, 0.4) > separation_share(0.3, 0.4)
    with pytest.raises(ValueError):
        separation_share(0.6, 0.5)


def test_view_normalisation_keeps_the_score_a_share():
    """The "max" normalisation divides the pooled pair agreement by each cluster's self-agreement pooled
    over *its own* views: a patch whose Gaussians spread over two patches in the views that see it large
    (self-agreement about 0.5) and that lies in one patch with its neighbour in the one view seeing both
    scores 1 / 0.505 = 1.98, above any share. Normalised per view ("view": each view's pairs against the
    larger self-agreement in that view), Cauchy-Schwarz bounds every view's agreement by it, so the score
    stays at most 1."""
    import scipy.sparse as sp
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, PatchStatistics, agglomerate

    # rows: patch a (view 0), patch b (view 1); columns: x2, y2 (view 2), x3, y3 (view 3), z4 (view 4)
    C = np.array([[5.0, 5.0, 0.0, 0.0, 1.0],
                  [0.0, 0.0, 5.0, 5.0, 1.0]])
    counts = np.array([[0.0, 0.0, 10.0, 0.0, 1.0],
                       [0.0, 0.0, 0.0, 10.0, 1.0]])
    stats = PatchStatistics(sp.csr_matrix(C @ C.T), counts, (counts > 0).astype(np.float32),
                            np.array([11.0, 11.0]), votes=sp.csr_matrix(C), column_patch=np.full(5, -1),
                            column_view=np.array([2, 2, 3, 3, 4]))
    pooled = agglomerate(stats, ConsistencyConfig(normalise="max", min_views=1))
    assert pooled.score[0] == pytest.approx(1.0 / (51.0 / 101.0))
    per_view = agglomerate(stats, ConsistencyConfig(normalise="view", min_views=1))
    assert per_view.score[0] == pytest.approx(1.0)
    # the default: no merge scores above 1 (the pooled "max", the earlier default, gives 1.98 here)
    assert agglomerate(stats, ConsistencyConfig(min_views=1)).score.max() <= 1.0 + 1e-9
    with pytest.raises(ValueError, match="votes"):
        agglomerate(PatchStatistics(stats.numerator, counts, stats.good, stats.mass),
                    ConsistencyConfig(normalise="view", min_views=1))


@pytest.mark.parametrize("stacks", ["clean", "mixed"])
def test_view_normalisation_never_above_one_and_finds_the_objects(planted, stacks):
    from gs_core.methods.trace3d.consistency import ConsistencyConfig

    masks = planted.stacks if stacks == "clean" else planted.mixed(1)
    inst, _ = associate(planted.scene, planted.cams, masks)
    view = consistent_instances(inst.store, ConsistencyConfig(normalise="view"))
    assert view.tree.score.max() <= 1.0 + 1e-9
    assert same_partition(view.patch_ids, inst.patch_ids)
    first = consistent_instances(inst.store, ConsistencyConfig(normalise="view", views_first_above=0))
    assert same_partition(first.patch_ids, inst.patch_ids)


@pytest.mark.parametrize("P, seed", [(60, 0), (300, 0)])
def test_agglomeration_is_the_same_on_one_and_two_blas_threads(P, seed):
    """The greedy run's tree (merges and scores, bitwise) does not depend on the caller's BLAS threads.
    Its scores' gemv over 200 views (the large room's count) rounds differently on one and two OpenBLAS
    threads; these two random shapes gave different scores before every run was pinned to one thread.
    (On a BLAS built for one thread both sides run on one, and the test cannot fail.)"""
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    from gs_core.methods.trace3d.consistency import ConsistencyConfig, PatchStatistics, agglomerate

    rng = np.random.default_rng(seed)
    counts = rng.random((P, 200)) * (rng.random((P, 200)) < 0.5)  # [P, V] fractional labelled mass
    good = (counts > 0.3).astype(np.float32)
    num = sp.random(P, P, density=0.1, random_state=seed, format="csr")
    num = (num + num.T).tolil() * 50.0
    num.setdiag(np.asarray(num.sum(1)).ravel() + 1.0)
    stats = PatchStatistics(num.tocsr(), counts, good, counts.sum(1))
    config = ConsistencyConfig(normalise="max", separation=None, min_views=1, floor=0.0)
    trees = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            trees.append(agglomerate(stats, config))
    assert len(trees[0].into) == P - 1  # floor 0: a full tree
    for f in ("into", "other", "score"):
        assert np.array_equal(getattr(trees[0], f), getattr(trees[1], f))
