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

import functools
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ...parallel import Executor, Shared, derived, forget, ordered, run_all
from .git import GITStore


def separation_share(p_split: float, p_merge: float) -> float:
    """The share of the views seeing two clusters that must show them as one for one object to be the
    likelier explanation, when a view cuts one object apart with probability ``p_split`` and shows two
    touching objects as one with probability ``p_merge``: with ``s`` views apart and ``m`` merged, the
    per-view log-likelihood ratio ``m log((1 - p_split) / p_merge) - s log((1 - p_merge) / p_split)``
    changes sign at ``m / (s + m)`` = this share."""
    if not (0 < p_split < 1 and 0 < p_merge < 1 and p_split + p_merge < 1):
        raise ValueError(f"need 0 < p_split, p_merge and p_split + p_merge < 1, got {p_split}, {p_merge}")
    apart, merged = np.log((1 - p_merge) / p_split), np.log((1 - p_split) / p_merge)
    return float(apart / (apart + merged))


# A SAM-like mask run (gs_core.synth's MaskNoise.level(0.5, hard=True); docs/benchmarks.md, issue 26):
# a view cuts one object into parts or halves ...
P_SPLIT = 0.31
# ... and shows touching objects (look-alikes in a row, a container and its contents) as one mask
P_MERGE = 0.38


# agglomerate (normalise "view") looks up a rescored row's unchanged scores from this many neighbours
# on; a shorter row costs less to score again than to look up (the same tree either way)
REUSE_MIN_ROW = 256


# a pair the gap keeps apart joins within the first notch coarser than the objects (the granularity
# slider's coarser half, theta down to floor, has this many notches: methods.trace3d.method.LEVELS)
SEPARATION_NOTCHES = 5


@dataclass(frozen=True)
class ConsistencyConfig:
    theta: float = 0.5  # merge threshold (paper 0.5; released code 0.4)
    iterations: int = 1  # statistics recomputed on the merged maps until the ids stop changing
    absorb_unconfirmed: bool = True  # a cluster no other view confirms joins its nearest (MergeTree.cut)
    hard: bool = True  # in the other views a Gaussian votes for its heaviest patch only (patch_statistics)
    normalise: str = "view"  # "view" | "max" | "geometric" | "none": score relative to each cluster's agreement with itself (see agglomerate)
    floor: float = 0.1  # the merge tree is recorded down to this score (group level)
    min_views: int = 2  # a pair needs this many supporting views (released code: 2) ...
    min_view_share: float = 0.2  # ... each with this share of both patches' Gaussians labelled
    max_gaussians: int = 200_000  # statistics from a random subset of at most this many Gaussians
    min_share: float = 0.0  # votes below this share of a patch's mass in another view are dropped (patch_votes)
    views_first_above: int = 8000  # more patches than this: merge within each view first (consistent_instances)
    # merged share of the views seeing a pair below which the gap the others see keeps it apart (agglomerate;
    # None: Eq. 3 alone). Measured with separation_share(P_SPLIT, P_MERGE) and patch_rule "finest"
    # (docs/benchmarks.md, issue 26); not the default: the share must match how the masks fail, and a
    # fixed one loses on the default worlds at high noise, and the rates estimated against the Eq. 3 clusters
    # miss the merges those clusters already hold (docs/benchmarks.md)
    separation: float | None = None
    separation_roots: bool = False  # separation: a split inside one of the view's masks is no gap (method.run passes roots)
    seed: int = 0


@dataclass
class MergeTree:
    """The greedy agglomeration of the global patches: merge ``k`` joined clusters ``into[k]`` and
    ``other[k]`` (cluster = the patch index of its first member) at pooled score ``score[k]``.

    ``sequence[k]`` names the greedy run merge ``k`` belongs to (all 0 for one global run; one per
    view, then one across views, when views are merged first: :func:`consistent_instances`). A cut
    follows each run up to its first merge below the threshold."""

    num_patches: int
    into: np.ndarray  # [K] int64
    other: np.ndarray  # [K] int64
    score: np.ndarray  # [K] float64
    sequence: np.ndarray | None = None  # [K] int64, None = all 0

    def cut(self, threshold: float, patch_view: np.ndarray | None = None) -> np.ndarray:  # -> [P] int64
        """Dense cluster id per patch after each run's merges up to its first whose score is below
        ``threshold``. With ``patch_view`` [P], a cluster that is still one view's patches alone (no
        other view confirmed it: a sliver of a jittered boundary, half of a spurious mask) then
        follows the rest of the tree into the first cluster it would join.

        Args:
            patch_view: [P] int the view of each global patch, or None (no absorption).
        """
        parent = np.arange(self.num_patches)

        def root(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        sequence = np.zeros(len(self.score), np.int64) if self.sequence is None else np.asarray(self.sequence)
        below = self.score < threshold
        # a merge applies if no earlier merge of its run is below the threshold
        first_below = {}
        for k in np.flatnonzero(below):
            first_below.setdefault(int(sequence[k]), int(k))
        applied = np.array([k < first_below.get(int(q), len(self.score)) for k, q in enumerate(sequence)], bool)
        for a, b in zip(self.into[applied], self.other[applied]):
            parent[root(b)] = root(a)
        if patch_view is not None:
            views: dict[int, set] = {}
            for p in range(self.num_patches):
                views.setdefault(root(p), set()).add(int(patch_view[p]))
            for a, b in zip(self.into[~applied], self.other[~applied]):
                ra, rb = root(a), root(b)
                if ra != rb and (len(views[ra]) == 1 or len(views[rb]) == 1):
                    parent[rb] = ra
                    views[ra] |= views.pop(rb)
        roots = np.array([root(p) for p in range(self.num_patches)], np.int64)
        return np.unique(roots, return_inverse=True)[1].astype(np.int64).ravel()


@dataclass
class PatchStatistics:
    """Pooled Eq. 3 sums between global patches, in factored form.

    Only the numerator needs a [P, P] matrix, and it is sparse: two patches interact only where
    their Gaussians share a patch of a third view. The pair counts and the view supports are
    products of [P, V] rows, ``pairs[a, b] = counts[a] . counts[b]`` and ``support[a, b] =
    good[a] . good[b]``, and stay so when clusters are pooled (sums of rows), so they are never
    materialised: on a large scene each dense [P, P] matrix outgrows memory (docs/benchmarks.md)."""

    numerator: sp.csr_matrix  # [P, P] float64, symmetric, with the diagonal: sum over pairs and views of <W_Ga, W_Gb>
    counts: np.ndarray  # [P, V] float64: mass of the patch's Gaussians labelled in each other view (0 in its own)
    good: np.ndarray  # [P, V] float32: 1 where that view labels min_view_share of the patch's Gaussians
    mass: np.ndarray  # [P] soft number of Gaussians per patch
    own: np.ndarray | None = None  # [P, V] float64: the patch's mass in its own view (for ConsistencyConfig.separation)
    roots: list | None = None  # [P] int64 arrays: the patch's roots (InstancePatches.roots, ids unique across views)
    # for ConsistencyConfig.separation: C of the module docstring (rows: these patches) and its columns'
    votes: sp.csr_matrix | None = None  # [P, Q] mass of each patch's Gaussians voting for each column
    column_patch: np.ndarray | None = None  # [Q] int64 the row each column is (a patch of another view), -1 = none
    column_view: np.ndarray | None = None  # [Q] int64 the view of each column

    def pairs(self) -> np.ndarray:  # [P, P] number of (Ga, Gb, v) triples (dense: small scenes and tests)
        return self.counts @ self.counts.T

    def support(self) -> np.ndarray:  # [P, P] int64: views where both patches are well labelled
        return np.rint(self.good.astype(np.float64) @ self.good.T).astype(np.int64)

    def similarity(self, min_views: int = 2) -> np.ndarray:  # [P, P], NaN where unsupported (dense)
        pairs = self.pairs()
        with np.errstate(invalid="ignore", divide="ignore"):
            s = self.numerator.toarray() / pairs
        s[(self.support() < min_views) | (pairs <= 0)] = np.nan
        np.fill_diagonal(s, np.nan)
        return s


@dataclass
class PatchVotes:
    """``C`` of the module docstring with its own view's entries removed, and the per-view counts."""

    C: sp.csr_matrix  # [P, Q] mass of each patch's Gaussians voting for each column (a patch of another view)
    counts: np.ndarray  # [P, V] float64: mass of the patch's Gaussians labelled in each other view (0 in its own)
    good: np.ndarray  # [P, V] float32: 1 where that view labels min_view_share of the patch's Gaussians
    mass: np.ndarray  # [P]
    own: np.ndarray | None = None  # [P, V] float64: mass of the row's patches in their own views
    roots: list | None = None  # [P] int64 arrays: the roots of the row's patches (ids unique across views)
    column_patch: np.ndarray | None = None  # [Q] int64 the row each column of C is, -1 = none (grouped columns)
    column_view: np.ndarray | None = None  # [Q] int64 the view of each column of C

    def statistics(self, rows: np.ndarray | None = None) -> PatchStatistics:
        """Eq. 3 statistics of the patches ``rows`` (all by default) among themselves.

        Args:
            rows: [R] int64 patch rows, or None for all P.
        """
        if rows is not None:
            return self.restrict(rows).statistics()
        votes = column_patch = None
        if self.column_view is not None:  # what the separation rule and the per-view normalisation read
            votes, column_patch = self.C, self.column_patch
        return PatchStatistics((self.C @ self.C.T).tocsr(), self.counts, self.good, self.mass, self.own, self.roots,
                               votes, column_patch, None if votes is None else self.column_view)

    def restrict(self, rows: np.ndarray, columns: bool = True) -> "PatchVotes":
        """The votes of the patches ``rows`` alone, the columns that are patches renamed to their
        position in ``rows`` (-1: a patch not among them): all that ``statistics(rows)`` reads, small
        enough to send to a worker (one view's patches: :func:`merge_within_views`). ``columns=False``
        leaves out the two [Q] column arrays, the same for every ``rows``: a map sends them once and
        each task puts them back (:meth:`with_columns`).

        Args:
            rows: [R] int64 patch rows.
        """
        pick = (lambda a: None if a is None else a[rows])
        roots = None if self.roots is None else [self.roots[r] for r in rows]
        restricted = PatchVotes(self.C[rows], self.counts[rows], self.good[rows], self.mass[rows], pick(self.own),
                                roots)
        return restricted.with_columns(rows, self.column_patch, self.column_view, len(self.counts)) if columns \
            else restricted

    def with_columns(self, rows: np.ndarray, column_patch: np.ndarray | None, column_view: np.ndarray | None,
                     P: int) -> "PatchVotes":
        """These votes, the rows ``rows`` of votes over ``P`` patches (:meth:`restrict` without its
        columns), with that whole's columns: ``column_patch`` renamed to the positions in ``rows``.

        Args:
            rows: [R] int64 the rows of the whole these are.
            column_patch: [Q] int64 the whole's row each column is, -1 = none; or None.
            column_view: [Q] int64 the view of each column; or None.
        """
        if column_patch is not None:
            local = np.full(P, -1, np.int64)
            local[rows] = np.arange(len(rows))
            column_patch = np.where(column_patch >= 0, local[np.maximum(column_patch, 0)], -1)
        return replace(self, column_patch=column_patch, column_view=column_view)

    def pooled(self, clusters: np.ndarray) -> "PatchVotes":
        """The votes of the clusters ``clusters`` [P] (dense ids) of patches, for rows and columns:
        Eq. 3 on the maps merged by ``clusters``.

        Args:
            clusters: [P] int64 dense cluster id of each patch.
        """
        P = len(clusters)
        Z = sp.csr_matrix((np.ones(P), (np.arange(P), clusters)), shape=(P, int(clusters.max()) + 1))
        square = self.C.shape[1] == P
        C = (Z.T @ self.C @ Z).tocsr() if square else (Z.T @ self.C).tocsr()
        own = None if self.own is None else Z.T @ self.own
        column_patch, column_view = self.column_patch, self.column_view
        if square and column_view is not None:  # columns pooled like the rows (clusters within one view)
            column_patch = np.arange(Z.shape[1], dtype=np.int64)
            column_view = np.zeros(Z.shape[1], np.int64)
            column_view[clusters] = self.column_view
        roots = None
        if self.roots is not None:
            roots = [np.zeros(0, np.int64) for _ in range(int(clusters.max()) + 1)]
            for p in range(P):
                roots[clusters[p]] = np.union1d(roots[clusters[p]], self.roots[p])
        return PatchVotes(C, Z.T @ self.counts, (Z.T @ self.good).astype(np.float32), Z.T @ self.mass, own, roots,
                          column_patch, column_view)


def patch_votes(store: GITStore, config: ConsistencyConfig = ConsistencyConfig(),
                grouping: np.ndarray | None = None, executor: Executor | None = None,
                roots: np.ndarray | None = None) -> PatchVotes:
    """``C = W^T W`` of the module docstring without each patch's own view, from a subset of at most
    ``config.max_gaussians`` Gaussians.

    ``grouping`` [P] (instance id per patch) evaluates the inner products on the merged maps: two
    Gaussians of another view agree when their patches there carry the same id (Sec. 3.3 iterates
    its merges, so later merges see the earlier ones).

    ``config.min_share`` drops the entries below that share of the patch's labelled mass in the
    other view: the spill of soft boundary weights onto neighbouring patches. Each view's agreement
    of two patches is a sum of products of two distributions, so dropping shares below ``e`` lowers
    it by at most ``2 e``. A small share shrinks the entries of a large room but moves panoptic
    mIoU of the small benchmark rooms (docs/benchmarks.md), so the default keeps every vote.

    The rows of each view (the votes its patches receive from the other views) are
    :func:`view_votes`, run on ``executor`` and stacked in view order: the same matrices wherever
    they ran. ``roots`` (each patch's root mask, ids unique across views:
    :meth:`InstancePatches.roots`) lets ``config.separation`` tell a gap the view's masks see from a
    split inside one of its masks.

    Args:
        grouping: [P] int instance id of each global patch, or None for the raw patches.
        roots: [P] int64 root mask of each global patch, or None.
    """
    n = store.num_gaussians
    rows = None
    if n > config.max_gaussians:
        rng = np.random.default_rng(config.seed)
        rows = np.sort(rng.choice(n, config.max_gaussians, replace=False))
    P, V = store.num_patches, len(store.views)
    view = store.patch_view
    col_view, cols = view, None
    if grouping is not None:  # columns summed per (view, instance): the merged maps' patches
        key = view.astype(np.int64) * (int(grouping.max()) + 1) + grouping
        cols = np.unique(key, return_inverse=True)[1].ravel()
        col_view = np.zeros(int(cols.max()) + 1, np.int64)
        col_view[cols] = view
    offsets = store.offsets
    # the store goes to the workers, not the matrices made from it (several times its bytes): each
    # process makes them once (derived), here too, where the local tasks read them
    shared = Shared((store, rows, config.hard, view, col_view, cols, config.min_share))
    try:
        mass = derived(shared, "votes", _vote_matrices)[3]
        blocks = run_all(executor, view_votes, [(int(offsets[k]), int(offsets[k + 1])) for k in range(V)], shared)
    finally:
        forget(shared)
    del shared
    if blocks:
        C_other = sp.vstack([c for c, _ in blocks], format="csr")
        counts = np.concatenate([n for _, n in blocks])
    else:
        C_other, counts = sp.csr_matrix((P, len(col_view))), np.zeros((P, V))
    del blocks
    good = ((counts >= config.min_view_share * mass[:, None]) & (counts > 0)).astype(np.float32)
    own = column_patch = column_view = None  # what config.separation / normalise "view" read
    if config.separation is not None:
        own = np.zeros((P, V), np.float64)
        own[np.arange(P), view] = mass
    if config.separation is not None or config.normalise == "view":
        column_patch = np.arange(P, dtype=np.int64) if cols is None else np.full(len(col_view), -1, np.int64)
        column_view = np.asarray(col_view, np.int64)
    root_rows = None if roots is None else [np.asarray(roots[p:p + 1], np.int64) for p in range(P)]
    return PatchVotes(C_other, counts, good, mass, own, root_rows, column_patch, column_view)


def _vote_matrices(value: tuple) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """From :func:`patch_votes`' shared ``(store, rows, hard, ...)``: ``W^T`` [P, n] csr (the soft
    memberships of the Gaussians ``rows``), the votes [n, P] csr (``W`` or, ``hard``, each
    Gaussian's heaviest patch per view), ``L`` [n, V] csr (1 where labelled in the view) and the
    patches' mass [P]."""
    store, rows, hard = value[:3]
    W = store.weights(normalise=True, labelled_only=True, rows=rows).tocsc()  # [n, P] soft memberships
    votes = store.weights(normalise=True, labelled_only=True, hard=True, rows=rows).tocsc() if hard else W
    P, V = W.shape[1], len(store.views)
    B = sp.csr_matrix((np.ones(P), (np.arange(P), store.patch_view)), shape=(P, V))  # patch -> view one-hot
    L = (W @ B)  # [n, V]: 1 where labelled in the view (rows of a view block sum to 1)
    L.data[:] = 1.0
    mass = np.asarray(W.sum(axis=0)).ravel()  # [P]
    return W.T.tocsr(), votes.tocsr(), L.tocsr(), mass


def view_votes(rows: tuple[int, int], shared: Shared) -> tuple[sp.csr_matrix, np.ndarray]:
    """One view's rows ``lo:hi`` of :func:`patch_votes`' ``C`` (own view's columns dropped) and of
    its ``counts`` (own view zeroed): a pure function of the view's patch range and of the shared
    ``(store, rows [n] | None, hard, view [P], col_view [Q], cols [P] | None, min_share)``, from
    which each process makes ``W^T``, the votes and ``L`` once (:func:`_vote_matrices`). Each row
    is computed as in the product of the whole matrices, so stacking the views' rows in view order
    gives them bitwise. -> (C rows [hi - lo, Q] csr, counts [hi - lo, V])."""
    lo, hi = rows
    Wt, votes, L, _ = derived(shared, "votes", _vote_matrices)
    view, col_view, cols, min_share = shared.value[3:]
    Wv = Wt[lo:hi]
    counts = np.asarray((Wv @ L).todense())  # [p, V]
    C = (Wv @ votes).tocoo()  # [p, P]
    if cols is not None:
        C = sp.csr_matrix((C.data, (C.row, cols[C.col])), shape=(hi - lo, len(col_view))).tocoo()  # sums duplicates
    keep = view[lo + C.row] != col_view[C.col]
    if min_share > 0:
        keep &= C.data >= min_share * counts[C.row, col_view[C.col]]
    C_other = sp.csr_matrix((C.data[keep], (C.row[keep], C.col[keep])), shape=C.shape)
    counts[np.arange(hi - lo), view[lo:hi]] = 0.0
    return C_other, counts


def patch_statistics(store: GITStore, config: ConsistencyConfig = ConsistencyConfig(),
                     grouping: np.ndarray | None = None, roots: np.ndarray | None = None) -> PatchStatistics:
    """Eq. 3 numerators, pair counts and supports of all global patch pairs (module docstring,
    :func:`patch_votes`).

    Args:
        grouping: [P] int instance id of each global patch, or None for the raw patches.
        roots: [P] int64 root mask of each global patch, or None.
    """
    return patch_votes(store, config, grouping, roots=roots).statistics()


def agglomerate(stats: PatchStatistics, config: ConsistencyConfig = ConsistencyConfig(),
                progress: Callable[[int, int], None] | None = None, reuse: bool = True) -> MergeTree:
    """:func:`_agglomerate` on one BLAS thread, whatever the caller's: the scores' dense products (pair
    counts and supports over the views, ``counts @ counts[i]``) round differently on one and on several
    OpenBLAS threads, so without it the tree (its scores, and so its cuts) would depend on the machine's
    cores, and a run on a cluster's worker (one thread) would differ from one in the driver
    (``tests/methods/trace3d/test_consistency.py``). Every run is pinned: within views, across views
    and the single run. ``reuse=False`` rescores every pair of a rescored row (the reference the
    tests compare the default with; the trees are bitwise the same)."""
    with _blas_controller().limit(limits=1, user_api="blas"), np.errstate(invalid="ignore", divide="ignore"):
        return _agglomerate(stats, config, progress, reuse)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """This process's threadpoolctl controller, made once (finding the loaded libraries costs
    milliseconds, and each view's merges call :func:`agglomerate`)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _merge_rows(ids_a: np.ndarray, val_a: np.ndarray, ids_b: np.ndarray, val_b: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two sparse rows with sorted unique ids merged: (ids [K] sorted unique, values [K] summed, a's
    value first, positions [S] in a and [S] in b of the ids both hold, ascending). The sums are
    bitwise those of ``np.unique`` and ``np.bincount`` over the concatenation (which start from 0 and add
    a's value, then b's), in linear time: the concatenation is two sorted runs, which a stable sort merges.

    Args:
        ids_a: [A] int64 sorted unique ids; val_a: [A] their values.
        ids_b: [B] int64 sorted unique ids; val_b: [B] their values.
    """
    pos = np.searchsorted(ids_a, ids_b)
    both = pos < len(ids_a)
    both[both] = ids_a[pos[both]] == ids_b[both]
    in_a, in_b = pos[both], np.flatnonzero(both)
    vals = val_a.copy()
    vals[in_a] += val_b[in_b]
    ids = np.concatenate([ids_a, ids_b[~both]])
    order = np.argsort(ids, kind="stable")
    return ids[order], np.concatenate([vals, val_b[~both]])[order], in_a, in_b


def _agglomerate(stats: PatchStatistics, config: ConsistencyConfig = ConsistencyConfig(),
                 progress: Callable[[int, int], None] | None = None, reuse: bool = True) -> MergeTree:
    """Greedy pooled agglomeration down to ``config.floor`` (module docstring), over the sparse
    graph of patches that share Gaussians.

    With ``config.normalise`` the score of clusters ``A``, ``B`` is Eq. 3 divided by the larger
    (``max``; per view, ``view``, the default) or the geometric mean of Eq. 3 of each with itself. A Gaussian near a
    boundary spreads its weight over two patches, so even two Gaussians of one patch have an inner
    product below 1 (well below for small objects): unnormalised, Eq. 3 mixes that spread
    with disagreement between views. Normalised, the score is the share of views that see the two
    as one: a majority vote at ``theta`` = 0.5. The geometric mean let a small object's low
    self-agreement inflate its score with its support: the support's views that miss the object
    label only its edge Gaussians, all as support (high pair agreement there, low where it is
    seen), so dividing by the geometric mean lifted the pair above ``theta``; dividing by the larger
    does not. On the benchmark ``max`` gains panoptic mIoU at both noise levels (docs/benchmarks.md).
    ``max`` pools each cluster's self-agreement over its own views, which are not the pair's: a cluster
    spread over two patches where it is seen large and one with its neighbour where both are seen scores
    above 1 (``tests/methods/trace3d/test_consistency.py``). ``view`` divides each view's pairs by the
    larger self-agreement in that view, which bounds the view's agreement (Cauchy-Schwarz), so the score
    is at most 1, a share of views as the cut levels assume (the default: measured in docs/benchmarks.md);
    it keeps each cluster's row of ``stats.votes`` (columns unique, summed on a merge) to pool the
    per-view self-agreements.

    With ``config.separation`` (a share, :func:`separation_share`) the score is also capped at
    ``theta * merged / separation`` (below the share: within one slider notch below ``theta``, so
    the pair joins one notch coarser than the objects and the group merges below keep their order),
    ``merged`` the share of the views seeing both clusters (a patch of
    their own or a well-labelled share of their Gaussians) that do not cut them apart. A view cuts them
    apart where each cluster's Gaussians land there more in its own patches than in the other's (its
    own patches' Gaussians included; ``stats.votes`` tells where the others land): a sliver of a
    jittered mask that a view gives one half of an object holds few of that half's Gaussians, which
    land in the other half's patch, so it is no gap, and the count does not depend on which slivers
    the greedy order has put where (it did, and each block of :mod:`gs_core.methods.blocks` cut its
    half of a table differently). Against the other's patches, not all of them: a cluster holding a
    mixed patch (two apples as one mask in one view) still sees the gap where a view splits them. A gap
    the views cut consistently keeps the pair apart at ``theta`` even where the other views, merging
    them, give Eq. 3 a majority (a row of touching look-alikes, a bowl and its apples), and the pair
    joins lower in the tree. ``seen`` pools by union and each view's share of a cluster's
    Gaussians in its own patches by sums of the votes between the merged clusters, so a pair costs a few
    [V] rows. With ``stats.roots`` a view whose largest mask holds both is not counted as a gap.

    Each cluster keeps its numerator row (neighbour ids, sums) with ids as they were when the row
    was last built; reading it maps them to today's clusters and sums duplicates, so a merge never
    edits the rows of the neighbours. Pair counts and supports are dot products of the pooled
    [V] rows (:class:`PatchStatistics`). With ``view`` a pair's score reads only the two clusters'
    rows (the pair counts only decide whether any view labels both, and the supports are whole
    numbers, so no product over all clusters is needed), so a row rescored because its best partner
    merged keeps the scores of the neighbours that have not merged since it was last scored and
    computes only the others (``reuse``; each score is an elementwise function of the pair's rows, so
    the tree is bitwise the one of rescoring the whole row). Merging the best pair first, as the dense form did: the
    trees are the same (``tests/trace3d/test_consistency.py`` checks it against a dense reference)."""
    num = stats.numerator.tocsr()
    P = num.shape[0]
    counts = stats.counts.astype(np.float64, copy=True)
    good = stats.good.astype(np.float64, copy=True)
    separation = config.separation
    cluster = np.arange(P)  # cluster of each patch: the smallest patch index among its members
    if separation is not None:
        if stats.own is None or stats.votes is None:
            raise ValueError("ConsistencyConfig.separation needs the statistics' own views and votes "
                             "(PatchVotes.statistics)")
    if config.normalise == "view" and stats.votes is None:
        raise ValueError("ConsistencyConfig.normalise 'view' needs the statistics' votes (PatchVotes.statistics)")
    if stats.votes is not None and (separation is not None or config.normalise == "view"):
        C = stats.votes.tocsr(copy=True)  # each cluster's row of C (summed with the other's on a merge)
        C.sum_duplicates()
        column_patch, column_view = np.asarray(stats.column_patch), np.asarray(stats.column_view)
        c_ids = [C.indices[C.indptr[p]:C.indptr[p + 1]].astype(np.int64) for p in range(P)]
        c_val = [C.data[C.indptr[p]:C.indptr[p + 1]].astype(np.float64) for p in range(P)]
    if config.normalise == "view":  # [P, V] each view's Eq. 3 numerator of the cluster with itself
        V = counts.shape[1]
        diag_view = np.stack([np.bincount(column_view[c_ids[p]], c_val[p] ** 2, minlength=V) for p in range(P)]) \
            if P else np.zeros((0, V))

        def view_self(i) -> np.ndarray:  # [..., V] each view's agreement of the cluster with itself
            den = counts[i] ** 2
            return np.where(den > 0, diag_view[i] / np.where(den > 0, den, 1.0), 0.0)

        selfview = view_self(np.arange(P))
    if separation is not None:
        own = stats.own.astype(np.float64, copy=True)  # [P, V] mass of the cluster's patches in their own views
        seen = ((own > 0) | (stats.good > 0)).astype(np.float64)  # [P, V] a patch of its own or well labelled
        own_view = (own > 0).argmax(1)
        home = own.copy()  # [P, V] mass a view labels in the cluster's own patches there (its own Gaussians first)
        CT = C.T.tocsr()  # [Q, P]: the patches voting for each column
        in_src = [[] for _ in range(P)]  # per cluster: the patches voting for its patches, the view, the mass
        in_view = [[] for _ in range(P)]
        in_val = [[] for _ in range(P)]
        for q in np.flatnonzero(column_patch >= 0):
            p, lo, hi = int(column_patch[q]), CT.indptr[q], CT.indptr[q + 1]
            in_src[p].append(CT.indices[lo:hi].astype(np.int64))
            in_view[p].append(np.full(hi - lo, column_view[q], np.int64))
            in_val[p].append(CT.data[lo:hi].astype(np.float64))
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
        in_src = [cat(x, np.int64) for x in in_src]
        in_view = [cat(x, np.int64) for x in in_view]
        in_val = [cat(x, np.float64) for x in in_val]

        def votes_into(i: int, k: int) -> np.ndarray:  # [V] cluster i's Gaussians voting for cluster k's patches
            q = column_patch[c_ids[i]]
            hit = q >= 0
            hit[hit] = cluster[q[hit]] == k
            return np.bincount(column_view[c_ids[i][hit]], c_val[i][hit], minlength=home.shape[1])

        for p in range(P):
            home[p] += votes_into(p, p)

        def gaps(i: int, ids: np.ndarray) -> np.ndarray:  # [len(ids)] views cutting cluster i apart from each
            pos = np.full(P, -1, np.int64)
            pos[ids] = np.arange(len(ids))
            q = column_patch[c_ids[i]]
            k = np.where(q >= 0, pos[cluster[np.maximum(q, 0)]], -1)
            into = np.zeros((len(ids), home.shape[1]))  # i's Gaussians voting for each k's patches, per view
            np.add.at(into, (k[k >= 0], column_view[c_ids[i][k >= 0]]), c_val[i][k >= 0])
            k = pos[cluster[in_src[i]]]
            back = np.zeros_like(into)  # each k's Gaussians voting for i's patches
            np.add.at(back, (k[k >= 0], in_view[i][k >= 0]), in_val[i][k >= 0])
            return ((home[i] > into) & (home[ids] > back)).sum(1).astype(np.float64)
        root_of = ([set(r.tolist()) for r in stats.roots] if stats.roots is not None else None)
        root_view = {} if root_of is None else {int(r): int(own_view[p]) for p in range(P) for r in root_of[p]}

        def shared_views(i: int, ids: np.ndarray) -> np.ndarray:  # views where a root holds both
            if root_of is None or not root_of[i]:
                return np.zeros(len(ids))
            mine = root_of[i]
            return np.array([len({root_view[r] for r in mine & root_of[k]}) if root_of[k] else 0 for k in ids],
                            np.float64)
    diag = num.diagonal().astype(np.float64)
    members = [[p] for p in range(P)]
    ids_of = [num.indices[num.indptr[p]:num.indptr[p + 1]].astype(np.int64) for p in range(P)]
    val_of = [num.data[num.indptr[p]:num.indptr[p + 1]].astype(np.float64) for p in range(P)]
    active = np.ones(P, bool)

    def self_agreement(i) -> np.ndarray:
        den = np.einsum("...v,...v->...", counts[i], counts[i])
        return np.where(den > 0, diag[i] / np.where(den > 0, den, 1.0), np.nan)

    selfsim = self_agreement(np.arange(P))

    def row(i: int) -> tuple[np.ndarray, np.ndarray]:  # cluster i's neighbours now and their numerator sums
        ids = cluster[ids_of[i]]
        uniq, inverse = np.unique(ids, return_inverse=True)
        vals = np.bincount(inverse.ravel(), val_of[i], minlength=len(uniq))
        other = uniq != i
        ids_of[i], val_of[i] = uniq[other], vals[other]
        return ids_of[i], val_of[i]

    def scores(i: int | np.ndarray, ids: np.ndarray, vals: np.ndarray, den: np.ndarray | None = None,
               sup: np.ndarray | None = None) -> np.ndarray:
        """Scores of the pairs (i, ids[k]) with numerators vals[k]; ``i`` one cluster or one per pair
        (separation: one), ``den`` / ``sup`` the pairs' counts and supports where already known."""
        if config.normalise == "view":  # each view's pairs against the larger self-agreement in that view
            if sup is None:  # whole numbers: exact in any order (a long row: all rows, then a pick)
                sup = (good @ good[i])[ids] if 4 * len(ids) > P else np.take(good, ids, axis=0) @ good[i]
            # no pair count: where none is positive the denominator below is 0 and the score not finite
            # (masked below), but a cap (separation) would turn it finite, so there its sign is kept
            r, one = np.empty(len(ids)), isinstance(i, (int, np.integer))
            den = np.ones(len(ids)) if separation is None else np.empty(len(ids))
            for lo in range(0, len(ids), 4096):  # [4096, V] blocks stay in cache; take: a faster gather
                at = slice(lo, lo + 4096)
                pairs = np.take(counts, ids[at], axis=0)  # [block, V]
                pairs *= counts[i] if one else np.take(counts, i[at], axis=0)
                if separation is not None:
                    den[at] = np.einsum("kv->k", pairs)  # > 0 where some view labels both (non-negative terms)
                top = np.take(selfview, ids[at], axis=0)
                np.maximum(top, selfview[i] if one else np.take(selfview, i[at], axis=0), out=top)
                r[at] = vals[at] / np.einsum("kv,kv->k", pairs, top)
        else:
            # all rows then a pick: a contiguous product beats a [deg, V] gather
            if den is None:
                den = (counts @ counts[i])[ids]
            if sup is None:
                sup = (good @ good[i])[ids]
            r = vals / den
            if config.normalise == "geometric":
                r = r / np.sqrt(selfsim[i] * selfsim[ids])
            elif config.normalise == "max":
                r = r / np.maximum(selfsim[i], selfsim[ids])
        if separation is not None:  # share of the views seeing both that do not cut them apart
            both = (seen @ seen[i])[ids]
            apart = np.maximum(gaps(i, ids) - shared_views(i, ids), 0.0)
            merged = np.where(both > 0, 1.0 - apart / np.where(both > 0, both, 1.0), 1.0)
            ratio = merged / separation  # < 1: the pair stays apart at theta
            notch = (config.theta - config.floor) / SEPARATION_NOTCHES  # one step of the slider's coarser half
            cap = np.where(ratio >= 1, config.theta * ratio, config.theta - notch * (1.0 - ratio))
            r = np.minimum(r, cap)
        r[(np.rint(sup) < config.min_views) | (den <= 0) | ~np.isfinite(r)] = -np.inf
        return r

    best = np.full(P, -np.inf)
    arg = np.zeros(P, np.int64)

    def keep_best(i: int, ids: np.ndarray, r: np.ndarray) -> None:
        if len(r):
            k = int(np.argmax(r))
            best[i], arg[i] = r[k], ids[k]
        else:
            best[i], arg[i] = -np.inf, i

    # reuse (view): each row's last scores (aligned with ids_of then), the merge after which they were
    # computed, the merge that last changed each cluster, and a scratch map from neighbour to position
    reuse = reuse and config.normalise == "view"
    scored: list[np.ndarray | None] = [None] * P
    scored_at = np.zeros(P, np.int64)
    changed_at = np.zeros(P, np.int64)
    slot = np.zeros(P, np.int64)

    def rescore(i: int) -> tuple[np.ndarray, np.ndarray]:
        before, r_before = ids_of[i], scored[i]
        ids, vals = row(i)
        if r_before is None or len(before) < REUSE_MIN_ROW:
            r = scores(i, ids, vals)
        else:  # neighbours unchanged since the last scores keep them (their value in the row too)
            fresh = changed_at[ids] > scored_at[i]
            slot[before] = np.arange(len(before))
            r = np.empty(len(ids))
            r[~fresh] = r_before[slot[ids[~fresh]]]
            r[fresh] = scores(i, ids[fresh], vals[fresh])
        if reuse:
            scored[i], scored_at[i] = r, len(into)
        keep_best(i, ids, r)
        return ids, r

    # the first scores, a block of rows at a time: pair counts and supports in one product, and (but
    # with separation) the block's pairs scored together, at most 2^16 at once
    for i in range(P):
        other_rows = ids_of[i] != i  # the rows of the CSR matrix (unique ids, in its order)
        ids_of[i], val_of[i] = ids_of[i][other_rows], val_of[i][other_rows]
    deg = np.array([len(x) for x in ids_of], np.int64)
    block = 256
    for start in range(0, P, block):
        stop = min(P, start + block)
        sup_block = good[start:stop] @ good.T  # [block, P]
        den_block = counts[start:stop] @ counts.T if config.normalise != "view" else None  # (view: the pairs' rows)
        lo = start
        while lo < stop:
            hi = lo + 1 if separation is not None else \
                lo + max(1, int(np.searchsorted(np.cumsum(deg[lo:stop]), 1 << 16, "right")))
            rows = np.arange(lo, hi)
            ids = np.concatenate([ids_of[i] for i in rows])
            of = np.repeat(rows, deg[lo:hi])  # the row of each pair
            r = scores(of if separation is None else lo, ids, np.concatenate([val_of[i] for i in rows]),
                       None if den_block is None else den_block[of - start, ids], sup_block[of - start, ids])
            ends = np.cumsum(deg[lo:hi])
            for i, r_i in zip(rows, np.split(r, ends[:-1])):
                if reuse:
                    scored[i] = r_i
                keep_best(i, ids_of[i], r_i)
            lo = hi
    into, other, score = [], [], []
    while P:
        i = int(np.argmax(best))
        if best[i] < config.floor:
            break
        j = int(arg[i])
        a, b = min(i, j), max(i, j)  # keep the earlier patch index as the cluster's name
        into.append(a), other.append(b), score.append(best[i])
        between = val_of[a][cluster[ids_of[a]] == b].sum()
        diag[a] += diag[b] + 2.0 * between
        counts[a] += counts[b]
        good[a] += good[b]
        if separation is not None or config.normalise == "view":  # a's row of C: sums over both, columns unique
            row_ids, row_val, ia, ib = _merge_rows(c_ids[a], c_val[a], c_ids[b], c_val[b])
        if config.normalise == "view":  # each view's numerator between a and b: sum over their common columns
            diag_view[a] += diag_view[b] + 2.0 * np.bincount(column_view[c_ids[b][ib]], c_val[a][ia] * c_val[b][ib],
                                                             minlength=counts.shape[1])
        if separation is not None:
            home[a] += home[b] + votes_into(a, b) + votes_into(b, a)
            own[a] += own[b]
            seen[a] = np.maximum(seen[a], seen[b])
            in_src[a], in_view[a], in_val[a] = (np.concatenate([x[a], x[b]]) for x in (in_src, in_view, in_val))
            in_src[b], in_view[b], in_val[b] = in_src[b][:0], in_view[b][:0], in_val[b][:0]
            if root_of is not None:
                root_of[a] |= root_of[b]
                root_of[b] = set()
        if separation is not None or config.normalise == "view":
            c_ids[a], c_val[a] = row_ids, row_val
            c_ids[b], c_val[b] = c_ids[b][:0], c_val[b][:0]
            if config.normalise == "view":
                selfview[a] = view_self(a)
        cluster[members[b]] = a
        members[a] += members[b]
        ids_of[a] = np.concatenate([ids_of[a], ids_of[b]])
        val_of[a] = np.concatenate([val_of[a], val_of[b]])
        members[b], ids_of[b], val_of[b] = [], ids_of[b][:0], val_of[b][:0]
        active[b] = False
        best[b] = -np.inf
        scored[a] = scored[b] = None  # a's row is all new
        changed_at[a] = len(into)
        selfsim[a] = self_agreement(a)
        ids, r = rescore(a)
        stale = np.flatnonzero(active & ((arg == a) | (arg == b)))
        for k in stale[stale != a]:
            rescore(int(k))
        improved = r > best[ids]
        best[ids[improved]] = r[improved]
        arg[ids[improved]] = a
        if progress is not None:
            progress(len(into), P)
    if progress is not None:
        progress(P, P)
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
        """View ``k``'s patch map (from :func:`make_patches`) in global instance ids.

        Args:
            patch_map: [H, W] int view k's patch per pixel, -1 = none.
        """
        ids = self.patch_ids[self.store.offsets[k]:self.store.offsets[k + 1]]
        if len(ids) == 0:  # a view without patches (SAM found nothing: a blank wall, a dark frame)
            return np.full(patch_map.shape, -1, self.patch_ids.dtype)
        return np.where(patch_map >= 0, ids[np.maximum(patch_map, 0)], -1)


def gaussian_votes(store: GITStore, patch_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-Gaussian instance id by the traced weight each id receives over all views where the
    Gaussian is seen: closed-form lifting of the consistent maps' one-hot ids from the stored GIT,
    without tracing again (:func:`gs_core.lifting.closed_form.labels_from_sums`), and the winning
    share. ``patch_ids`` [P] -> (labels [N] int64 -1 = none, confidence [N]).

    Args:
        patch_ids: [P] int global instance id of each global patch.
    """
    import torch

    from ...lifting.closed_form import LabelSums, labels_from_sums

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

    Args:
        cuts: [L] of [P] int64 patch ids at each cut of the tree, finest first.
    """
    import torch

    from ...lifting.closed_form import LabelSums, labels_from_sums

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
    """Whether two id arrays group the same elements together (ids themselves may differ).

    Args:
        a: [K] ids.
        b: [K] ids of the same elements.
    """
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def merge_within_views(votes: PatchVotes, patch_view: np.ndarray, config: ConsistencyConfig,
                       progress: Callable[[int, int], None] | None = None,
                       executor: Executor | None = None) -> MergeTree:
    """Sec. 3.3's first step alone: each view's patches merged where the other views agree (down to
    ``config.theta``), one greedy run per view. Each view's statistics involve only its own patches,
    so each run is a pure function of one view's rows (:meth:`PatchVotes.restrict`), run on
    ``executor`` (:func:`merge_one_view`) and gathered in view order. ``progress`` (views done,
    views) follows it.

    Args:
        patch_view: [P] int the view of each global patch.
    """
    P = len(patch_view)
    into, other, score, sequence = [], [], [], []
    views = np.unique(patch_view)
    rows_of = [np.flatnonzero(patch_view == v) for v in views]
    # made as they are sent; the columns, the same for every view, go once for the map
    items = ((rows, votes.restrict(rows, columns=False)) for rows in rows_of)
    columns = (votes.column_patch, votes.column_view, P)
    trees = ordered(executor, merge_one_view, items, replace(config, floor=config.theta), columns)
    for done, (v, rows, tree) in enumerate(zip(views, rows_of, trees)):
        into.append(rows[tree.into]), other.append(rows[tree.other]), score.append(tree.score)
        sequence.append(np.full(len(tree.score), v, np.int64))
        if progress is not None:
            progress(done + 1, len(views))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return MergeTree(P, cat(into, np.int64), cat(other, np.int64), cat(score, np.float64), cat(sequence, np.int64))


def merge_one_view(item: tuple, config: ConsistencyConfig, columns: tuple) -> MergeTree:
    """One view's greedy run of :func:`merge_within_views`, here or on a worker: ``item`` is the view's
    rows [R] and their votes without the columns (:meth:`PatchVotes.restrict`), ``columns`` the whole's
    ``(column_patch [Q], column_view [Q], P)``, sent once for the map. On one BLAS thread wherever it
    runs, as every :func:`agglomerate` is, so the tree is the same with and without a cluster."""
    rows, votes = item
    return agglomerate(votes.with_columns(rows, *columns).statistics(), config)


def consistent_instances(store: GITStore, config: ConsistencyConfig = ConsistencyConfig(),
                         progress: Callable[[str, int, int], None] | None = None,
                         executor: Executor | None = None, roots: np.ndarray | None = None) -> ConsistentInstances:
    """Merge tree, global ids (cut at ``theta``) and per-Gaussian ids of a traced scene.

    The first pass scores raw patches; each further pass scores them on the maps merged by the
    previous one, until the ids stop changing (at most ``config.iterations`` passes). ``progress``
    (stage, done, total) follows the merges within views and the agglomeration.

    Above ``config.views_first_above`` patches, each view's patches are merged first (Sec. 3.3's
    order, :func:`merge_within_views`) and the merged patches are then associated across views:
    the cross-view numerator then has (merged patches)^2 entries at most instead of (patches)^2 (on a
    large scene the latter outgrows memory: docs/benchmarks.md). Merges below ``theta`` inside a
    view are then not in the tree, so finer cuts than ``theta`` split fewer parts. ``executor`` runs
    the per-view votes (:func:`view_votes`) and merges within views (:func:`merge_one_view`); the
    merges across views run here.

    Args:
        roots: [P] int64 root mask of each global patch (:meth:`InstancePatches.roots`), or None.
    """
    patch_ids = None
    view = store.patch_view
    say = progress or (lambda stage, done, total: None)
    for _ in range(max(1, config.iterations)):
        votes = patch_votes(store, config, patch_ids, executor, roots=roots)
        if store.num_patches > config.views_first_above:
            within = merge_within_views(votes, view, config, lambda d, n: say("merging within views", d, n), executor)
            merged = within.cut(config.theta)
            first = np.unique(merged, return_index=True)[1]  # each merged patch's first member
            across = agglomerate(votes.pooled(merged).statistics(), config,
                                 lambda d, n: say("associating patches", d, n))
            tree = MergeTree(len(view), np.concatenate([within.into, first[across.into]]),
                             np.concatenate([within.other, first[across.other]]),
                             np.concatenate([within.score, across.score]),
                             np.concatenate([within.sequence, np.full(len(across.score), view.max() + 1)]))
        else:
            tree = agglomerate(votes.statistics(), config, lambda d, n: say("associating patches", d, n))
        new = tree.cut(config.theta, view if config.absorb_unconfirmed else None)
        if patch_ids is not None and same_partition(new, patch_ids):
            break
        patch_ids = new
    labels, confidence = gaussian_votes(store, patch_ids)
    return ConsistentInstances(store, tree, patch_ids, labels, confidence)
