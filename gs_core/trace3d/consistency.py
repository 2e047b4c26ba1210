"""Consistent instance maps from GIT (Trace3D Sec. 3.3, Eq. 3): patches merged by the majority vote
of the other views, into global instance ids with a merge tree.

Eq. 3 scores two patches ``a``, ``b`` by the mean inner product ``<W^v_Ga, W^v_Gb>`` over Gaussian
pairs ``Ga`` of ``a``, ``Gb`` of ``b`` and views ``v`` where both are labelled: the probability
that the other views put them in the same patch. With soft memberships ``W`` ([N, P], each
Gaussian's distribution over the patches of each view) both the sum and the pair count factor
into sparse products, so no Gaussian pair is ever enumerated:

* ``C = W^T W`` [P, P]: ``C[a, c]`` is the mass of patch ``a``'s Gaussians that lands in patch ``c``;
* numerator ``(C - C_own)(C - C_own)^T``, where ``C_own`` keeps the entries of a patch's own view,
  so a view never votes on its own patches;
* pair count ``(n - n_own)(n - n_own)^T`` with ``n = W^T L`` [P, V], ``L`` [N, V] = labelled.

Patches of one view are merged when the score exceeds ``theta`` (paper 0.5, released code 0.4); the
same score between patches of different views associates them, so one agglomeration gives both the
within-view merges and the global ids. Clusters are merged greedily, highest score first, with the
*pooled* score (sums of numerators over sums of counts): a mixed patch (an object merged with its
support in one view) joins a large cluster late and barely moves its statistics, so it cannot
swallow the small object, unlike a memory bank (DESIGN.md). Merging continues below ``theta``
down to ``floor`` to record the merge tree: cutting it higher gives parts, lower gives groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .git import GITStore


@dataclass(frozen=True)
class ConsistencyConfig:
    theta: float = 0.5  # merge threshold (paper 0.5; released code 0.4)
    iterations: int = 1  # statistics recomputed on the merged maps until the ids stop changing
    absorb_unconfirmed: bool = True  # a cluster no other view confirms joins its nearest (MergeTree.cut)
    hard: bool = True  # in the other views a Gaussian votes for its heaviest patch only (patch_statistics)
    normalise: str = "geometric"  # "geometric" | "max" | "none": score relative to each cluster's agreement with itself (see agglomerate)
    floor: float = 0.1  # the merge tree is recorded down to this score (group level)
    min_views: int = 2  # a pair needs this many supporting views (released code: 2) ...
    min_view_share: float = 0.2  # ... each with this share of both patches' Gaussians labelled
    max_gaussians: int = 200_000  # statistics from a random subset of at most this many Gaussians
    seed: int = 0


@dataclass
class MergeTree:
    """The greedy agglomeration of the global patches: merge ``k`` joined clusters ``into[k]`` and
    ``other[k]`` (cluster = the patch index of its first member) at pooled score ``score[k]``."""

    num_patches: int
    into: np.ndarray  # [K] int64
    other: np.ndarray  # [K] int64
    score: np.ndarray  # [K] float64

    def cut(self, threshold: float, patch_view: np.ndarray | None = None) -> np.ndarray:  # -> [P] int64
        """Dense cluster id per patch after the merges up to the first whose score is below
        ``threshold``. With ``patch_view`` [P], a cluster that is still one view's patches alone (no
        other view confirmed it: a sliver of a jittered boundary, half of a spurious mask) then
        follows the rest of the tree into the first cluster it would join."""
        parent = np.arange(self.num_patches)

        def root(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        below = np.flatnonzero(self.score < threshold)
        stop = int(below[0]) if len(below) else len(self.score)
        for a, b in zip(self.into[:stop], self.other[:stop]):
            parent[root(b)] = root(a)
        if patch_view is not None:
            views: dict[int, set] = {}
            for p in range(self.num_patches):
                views.setdefault(root(p), set()).add(int(patch_view[p]))
            for a, b in zip(self.into[stop:], self.other[stop:]):
                ra, rb = root(a), root(b)
                if ra != rb and (len(views[ra]) == 1 or len(views[rb]) == 1):
                    parent[rb] = ra
                    views[ra] |= views.pop(rb)
        roots = np.array([root(p) for p in range(self.num_patches)], np.int64)
        return np.unique(roots, return_inverse=True)[1].astype(np.int64).ravel()


@dataclass
class PatchStatistics:
    """Pooled Eq. 3 sums between global patches (dense, symmetric)."""

    numerator: np.ndarray  # [P, P] float64: sum over pairs and views of <W_Ga, W_Gb>
    pairs: np.ndarray  # [P, P] float64: number of (Ga, Gb, v) triples
    support: np.ndarray  # [P, P] int32: views where both patches are well labelled
    mass: np.ndarray  # [P] soft number of Gaussians per patch

    def similarity(self, min_views: int = 2) -> np.ndarray:  # [P, P], NaN where unsupported
        with np.errstate(invalid="ignore", divide="ignore"):
            s = self.numerator / self.pairs
        s[(self.support < min_views) | (self.pairs <= 0)] = np.nan
        np.fill_diagonal(s, np.nan)
        return s


def patch_statistics(store: GITStore, config: ConsistencyConfig = ConsistencyConfig(),
                     grouping: np.ndarray | None = None) -> PatchStatistics:
    """Eq. 3 numerators, pair counts and supports of all global patch pairs (module docstring).

    ``grouping`` [P] (instance id per patch) evaluates the inner products on the merged maps: two
    Gaussians of another view agree when their patches there carry the same id (Sec. 3.3 iterates
    its merges, so later merges see the earlier ones)."""
    n = store.num_gaussians
    rows = None
    if n > config.max_gaussians:
        rng = np.random.default_rng(config.seed)
        rows = np.sort(rng.choice(n, config.max_gaussians, replace=False))
    W = store.weights(normalise=True, labelled_only=True, rows=rows).tocsc()  # [n, P] soft memberships
    votes = store.weights(normalise=True, labelled_only=True, hard=True, rows=rows).tocsc() if config.hard else W
    P, V = W.shape[1], len(store.views)
    view = store.patch_view
    B = sp.csr_matrix((np.ones(P), (np.arange(P), view)), shape=(P, V))  # patch -> view one-hot
    L = (W @ B)  # [n, V]: 1 where labelled in the view (rows of a view block sum to 1)
    L.data[:] = 1.0
    mass = np.asarray(W.sum(axis=0)).ravel()  # [P]
    counts = np.asarray((W.T @ L).todense())  # [P, V]
    C = (W.T @ votes).tocoo()  # [P, P]
    other = view[C.row] != view[C.col]
    C_other = sp.csr_matrix((C.data[other], (C.row[other], C.col[other])), shape=(P, P))
    if grouping is not None:  # columns summed per (view, instance): the merged maps' patches
        key = view.astype(np.int64) * (int(grouping.max()) + 1) + grouping
        cols = np.unique(key, return_inverse=True)[1].ravel()
        Z = sp.csr_matrix((np.ones(P), (np.arange(P), cols)), shape=(P, int(cols.max()) + 1))
        C_other = (C_other @ Z).tocsr()
    numerator = np.asarray((C_other @ C_other.T).todense())
    counts_other = counts.copy()
    counts_other[np.arange(P), view] = 0.0
    pairs = counts_other @ counts_other.T
    good = (counts_other >= config.min_view_share * mass[:, None]) & (counts_other > 0)
    good = good.astype(np.float32)
    support = np.rint(good @ good.T).astype(np.int32)
    return PatchStatistics(numerator, pairs, support, mass)


def agglomerate(stats: PatchStatistics, config: ConsistencyConfig = ConsistencyConfig()) -> MergeTree:
    """Greedy pooled agglomeration down to ``config.floor`` (module docstring).

    With ``config.normalise`` the score of clusters ``A``, ``B`` is Eq. 3 divided by the geometric
    mean of Eq. 3 of each with itself. A Gaussian near a boundary spreads its weight over two
    patches, so even two Gaussians of one patch have an inner product below 1 (0.6-0.8 for small
    objects at 160x120): unnormalised, Eq. 3 mixes that spread with disagreement between views.
    Normalised, the score is the share of views that see the two as one, whatever the splat size:
    a majority vote at ``theta`` = 0.5."""
    num, den = stats.numerator.copy(), stats.pairs.copy()
    sup = stats.support.astype(np.int64)
    P = len(num)
    active = np.ones(P, bool)

    def self_agreement() -> np.ndarray:  # [P]: how often a cluster's Gaussians agree among themselves
        d = np.diagonal(den)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, np.diagonal(num) / d, np.nan)

    selfsim = self_agreement()

    def row_scores(i: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = num[i] / den[i]
            if config.normalise == "geometric":
                r = r / np.sqrt(selfsim[i] * selfsim)
            elif config.normalise == "max":
                r = r / np.maximum(selfsim[i], selfsim)
        r[~active | (sup[i] < config.min_views) | (den[i] <= 0) | ~np.isfinite(r)] = -np.inf
        r[i] = -np.inf
        return r

    best = np.full(P, -np.inf)
    arg = np.zeros(P, np.int64)
    for i in range(P):
        r = row_scores(i)
        arg[i] = int(np.argmax(r)) if P else 0
        best[i] = r[arg[i]] if P else -np.inf
    into, other, score = [], [], []
    while True:
        i = int(np.argmax(np.where(active, best, -np.inf))) if P else 0
        if P == 0 or not active[i] or best[i] < config.floor:
            break
        j = int(arg[i])
        a, b = min(i, j), max(i, j)  # keep the earlier patch index as the cluster's name
        into.append(a), other.append(b), score.append(best[i])
        for m in (num, den, sup):
            m[a] += m[b]
            m[:, a] += m[:, b]
        active[b] = False
        best[b] = -np.inf
        selfsim[a] = num[a, a] / den[a, a] if den[a, a] > 0 else np.nan
        r = row_scores(a)
        arg[a] = int(np.argmax(r))
        best[a] = r[arg[a]]
        stale = active & ((arg == a) | (arg == b))
        stale[a] = False
        for k in np.flatnonzero(stale):
            rk = row_scores(int(k))
            arg[k] = int(np.argmax(rk))
            best[k] = rk[arg[k]]
        improved = active & (r > best)
        improved[a] = False
        best[improved] = r[improved]
        arg[improved] = a
    return MergeTree(P, np.array(into, np.int64), np.array(other, np.int64), np.array(score))


@dataclass
class ConsistentInstances:
    """Global instance ids of every patch of every training view, and of every Gaussian."""

    store: GITStore
    tree: MergeTree
    patch_ids: np.ndarray  # [P] global instance id of each global patch (cut at theta)
    labels: np.ndarray  # [N] int64 per-Gaussian instance id, -1 = never labelled
    confidence: np.ndarray  # [N] share of the Gaussian's traced weight that carries its label

    @property
    def num_instances(self) -> int:
        return int(self.patch_ids.max()) + 1 if len(self.patch_ids) else 0

    def view_map(self, k: int, patch_map: np.ndarray) -> np.ndarray:  # [H, W] local patches -> ids
        """View ``k``'s patch map (from :func:`make_patches`) in global instance ids."""
        ids = self.patch_ids[self.store.offsets[k]:self.store.offsets[k + 1]]
        return np.where(patch_map >= 0, ids[np.maximum(patch_map, 0)], -1)


def gaussian_votes(store: GITStore, patch_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-Gaussian instance id by the traced weight each id receives over all views where the
    Gaussian is seen: closed-form lifting of the consistent maps' one-hot ids from the stored GIT,
    without tracing again (:func:`gs_core.lifting.closed_form.labels_from_sums`), and the winning
    share. ``patch_ids`` [P] -> (labels [N] int64 -1 = none, confidence [N])."""
    import torch

    from ..lifting.closed_form import LabelSums, labels_from_sums

    g, p, w = _triplets(store)
    ids = patch_ids[p]
    total = np.bincount(g, w, minlength=store.num_gaussians).astype(np.float32)
    lifted = labels_from_sums(LabelSums(torch.from_numpy(g), torch.from_numpy(ids.astype(np.int64)),
                                        torch.from_numpy(w.astype(np.float32)), torch.from_numpy(total)))
    return lifted.labels.numpy().astype(np.int64), lifted.confidence.numpy().astype(np.float64)


def _triplets(store: GITStore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored GIT as (gaussian [M], global patch [M], weight [M]) over all views."""
    if not store.views:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    offsets = store.offsets
    g = np.concatenate([v.gaussians for v in store.views]).astype(np.int64)
    p = np.concatenate([offsets[k] + v.patches.astype(np.int64) for k, v in enumerate(store.views)])
    w = np.concatenate([v.weights for v in store.views]).astype(np.float64)
    return g, p, w


def _parents(fine: np.ndarray, coarse: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """For each cluster of the patch partition ``fine`` [P], the cluster of ``coarse`` [P] holding
    most of its patches' traced mass ``mass`` [P] (the cuts of one tree are nested but for rare
    absorptions of unconfirmed clusters, which this resolves)."""
    nf, nc = int(fine.max()) + 1, int(coarse.max()) + 1
    joint = np.bincount(fine * nc + coarse, mass + 1e-12, minlength=nf * nc).reshape(nf, nc)
    return joint.argmax(1)


def nested_level_labels(store: GITStore, cuts: list[np.ndarray], anchor: int) -> np.ndarray:  # -> [L, N]
    """Per-Gaussian ids at each cut of the merge tree (``cuts`` [L] of [P] patch ids, finest first),
    nested so that a granularity slider grows a selection monotonically: every id at one level lies
    inside a single id of the next coarser level.

    The ``anchor`` level (the objects) is the closed-form vote of :func:`gaussian_votes`; coarser
    levels map its ids to their parent clusters; finer levels re-vote each Gaussian only among the
    children of its id one level up (its heaviest child overall where it saw none of them).
    """
    import torch

    from ..lifting.closed_form import LabelSums, labels_from_sums

    n = store.num_gaussians
    out = np.full((len(cuts), n), -1, np.int64)
    out[anchor] = gaussian_votes(store, cuts[anchor])[0]
    g, p, w = _triplets(store)
    mass = np.bincount(p, w, minlength=store.num_patches)
    for i in range(anchor + 1, len(cuts)):
        up = _parents(cuts[i - 1], cuts[i], mass)
        out[i] = np.where(out[i - 1] >= 0, up[np.maximum(out[i - 1], 0)], -1)
    for i in range(anchor - 1, -1, -1):
        up = _parents(cuts[i], cuts[i + 1], mass)
        child_mass = np.bincount(cuts[i], mass, minlength=len(up))
        fine = cuts[i][p]
        ok = (up[fine] == out[i + 1][g]) & (out[i + 1][g] >= 0)
        total = np.bincount(g[ok], w[ok], minlength=n).astype(np.float32)
        lifted = labels_from_sums(LabelSums(torch.from_numpy(g[ok]), torch.from_numpy(fine[ok]),
                                            torch.from_numpy(w[ok].astype(np.float32)), torch.from_numpy(total)))
        labels = lifted.labels.numpy().astype(np.int64)
        # labelled one level up but no vote for any of its children: that label's heaviest child
        heaviest = np.full(int(cuts[i + 1].max()) + 1, -1, np.int64)
        for c in np.argsort(child_mass):  # ascending mass: the heaviest child is written last
            heaviest[up[c]] = c
        orphan = (labels < 0) & (out[i + 1] >= 0)
        labels[orphan] = heaviest[out[i + 1][orphan]]
        out[i] = labels
    return out


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two id arrays group the same elements together (ids themselves may differ)."""
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def consistent_instances(store: GITStore, config: ConsistencyConfig = ConsistencyConfig()) -> ConsistentInstances:
    """Merge tree, global ids (cut at ``theta``) and per-Gaussian ids of a traced scene.

    The first pass scores raw patches; each further pass scores them on the maps merged by the
    previous one, until the ids stop changing (at most ``config.iterations`` passes)."""
    patch_ids = None
    for _ in range(max(1, config.iterations)):
        tree = agglomerate(patch_statistics(store, config, patch_ids), config)
        new = tree.cut(config.theta, store.patch_view if config.absorb_unconfirmed else None)
        if patch_ids is not None and same_partition(new, patch_ids):
            break
        patch_ids = new
    labels, confidence = gaussian_votes(store, patch_ids)
    return ConsistentInstances(store, tree, patch_ids, labels, confidence)
