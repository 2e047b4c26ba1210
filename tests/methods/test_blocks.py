"""Scenes split into blocks with overlap, each block's Trace3D core on its own views, ids stitched
across the borders by the overlap's votes (gs_core.methods.blocks)."""

from dataclasses import replace

import numpy as np
import pytest

from gs_core.methods.blocks import Block, BlockConfig, run_blocks, split_blocks, stitch
from gs_core.methods.trace3d import Trace3DConfig, run
from gs_core.methods.trace3d.consistency import P_MERGE, P_SPLIT, ConsistencyConfig, separation_share
from gs_core.metrics import panoptic_scores


@pytest.fixture(scope="module")
def tabletop(tmp_path_factory):
    """A tiny tabletop: the table stands at the scene's centre, so the 2x1 split's border crosses it
    (and the floor, and an item on the table); about 7k splats, 6 views."""
    from gs_core.dataset import Dataset
    from gs_core.synth import MaskNoise, SynthConfig, build_dataset

    root = tmp_path_factory.mktemp("blocks") / "dataset"
    build_dataset(root, SynthConfig.sized("tiny", layout="tabletop"), MaskNoise.level(0.5))
    ds = Dataset.load(root)
    views = [k for k in range(len(ds)) if ds.masks(k) is not None]
    with np.load(root / "gt" / "gaussians.npz") as z:
        gt = z["object"]
    return ds.load_scene(), [ds.cameras[k] for k in views], [ds.masks(k) for k in views], gt


def test_every_gaussian_has_one_core_block_and_overlaps_are_shared(tabletop):
    scene, cams, _, _ = tabletop
    blocks = split_blocks(scene.means, cams, BlockConfig(grid=(2, 2), overlap=0.2))
    cores = np.zeros(len(scene), int)
    member = np.zeros(len(scene), int)
    for b in blocks:
        np.add.at(cores, b.rows[b.core], 1)
        np.add.at(member, b.rows, 1)
        assert len(b.views) > 0
    assert (cores == 1).all()
    assert (member >= 2).sum() > 0.1 * len(scene)  # the overlaps
    assert abs(len(blocks[0].rows[blocks[0].core]) - len(scene) / 4) < 0.05 * len(scene)  # cut at quantiles


def test_stitch_joins_ids_the_overlap_votes_for_and_keeps_a_sliver_apart():
    rows = np.arange(100)
    a = Block(0, rows[:60], rows[:60] < 50, np.zeros(0, np.int64))  # core 0..49, overlap 40..59 with b
    b = Block(1, rows[40:], rows[40:] >= 50, np.zeros(0, np.int64))  # core 50..99
    la = np.where((rows[:60] >= 40) & (rows[:60] < 48), 2, 0)  # a: object 0, and a small id 2 at 40..47
    lb = np.where(rows[40:] < 90, 7, 3)  # b: one object 7 over 40..89, then 3
    out = stitch([a, b], [la, lb], 100, BlockConfig(min_votes=5))
    assert out[0] == out[80]  # a's 0 and b's 7: 12 of the 20 overlap Gaussians vote for the pair
    assert out[95] != out[80]  # b's 3 never met a's ids
    # a's 2 lies wholly inside b's 7 (8 votes) but is only 8 of 7's 20: a sliver, not joined
    assert (out[40:48] == out[40]).all() and out[40] not in (out[0], out[95])
    assert len(np.unique(out)) == 3 and out.min() == 0
    # two big ids that each reach the overlap by a sliver (6 of 1,000 Gaussians, all voting for the pair): the pair
    # rule alone joins them, join_whole (1% of each id's Gaussians in its block) does not (docs/benchmarks.md)
    big = np.arange(2000)
    c = Block(0, big[:1006], big[:1006] < 1003, np.zeros(0, np.int64))  # core 0..1002, overlap 1000..1005 with d
    d = Block(1, big[1000:], big[1000:] >= 1003, np.zeros(0, np.int64))  # core 1003..1999
    lc = np.zeros(1006, np.int64)  # c: one id 0 over 1,006 Gaussians
    ld = np.r_[np.full(506, 4), np.full(494, 9)]  # d: id 4 over the overlap and 500 more, id 9 the rest
    joined = stitch([c, d], [lc, ld], 2000, BlockConfig(join_whole=0.0))
    assert joined[0] == joined[1010]  # 6 votes of 6 and 6 overlap Gaussians: the pair rule joins them
    apart = stitch([c, d], [lc, ld], 2000, BlockConfig())
    assert apart[0] != apart[1010] and apart[0] == apart[1002] and apart[1003] == apart[1010]
    # some blocks of a larger grid (bench scale --limit 4 runs blocks 0, 1, 4, 5): the same ids
    far = [Block(4, a.rows, a.core, a.views), Block(5, b.rows, b.core, b.views)]
    assert np.array_equal(stitch(far, [la, lb], 100, BlockConfig(min_votes=5)), out)


# the separation rule as measured with the pooled "max" normalisation (docs/benchmarks.md, issue 26) ...
SEPARATION = Trace3DConfig(density=None, consistency=ConsistencyConfig(separation=separation_share(P_SPLIT, P_MERGE),
                                                                       normalise="max"))
# ... and with the default per-view one: with the finest patches the blocks agree with the whole run; with
# the cells patches the whole run cuts one item of this tiny scene in two (87 / 670 Gaussians) that both
# blocks keep whole (agreement 0.85; the cause is not traced yet: docs/benchmarks.md)
VIEW_SEPARATION = replace(SEPARATION, consistency=replace(SEPARATION.consistency, normalise="view"))


@pytest.mark.parametrize("config", [Trace3DConfig(density=None), SEPARATION,
                                    replace(VIEW_SEPARATION, patch_rule="finest"),
                                    pytest.param(VIEW_SEPARATION, marks=pytest.mark.xfail(
                                        reason="cells + separation + view: the whole run cuts an item the blocks "
                                               "keep whole (docs/benchmarks.md, issue 26)"))],
                         ids=["eq3", "separation", "finest+separation", "view+separation"])
def test_an_object_across_the_border_is_one_instance_and_labels_agree_with_the_whole_run(tabletop, config):
    """Also with the separation rule: a view is a gap only where each side's Gaussians land more in its
    own patches than in the other's, so a jittered sliver a view gives one half of the table (in one
    block's greedy order) does not cut the table in two on one side of the border."""
    scene, cams, stacks, gt = tabletop
    result = run_blocks(scene, cams, stacks, config, BlockConfig(grid=(2, 1)))
    side = np.zeros(len(scene), int)
    side[result.blocks[1].rows[result.blocks[1].core]] = 1
    crossing = [o for o in np.unique(gt[gt >= 0]) if 0.15 < (side[gt == o] == 0).mean() < 0.85]
    assert len(crossing) >= 2  # the table and the floor at least

    def dominant(labels, o, s):
        x = labels[(gt == o) & (side == s)]
        values, counts = np.unique(x[x >= 0], return_counts=True)
        return values[counts.argmax()], counts.max() / counts.sum()  # of its labelled Gaussians

    for o in crossing:
        (left, share_l), (right, share_r) = dominant(result.labels, o, 0), dominant(result.labels, o, 1)
        assert left == right, f"object {o} has id {left} on one side of the border and {right} on the other"
        assert min(share_l, share_r) > 0.8
    whole = run(scene, cams, stacks, config).labels
    agreement = panoptic_scores(result.labels[None, None], whole[None, None])
    assert agreement.miou > 0.9, agreement  # docs/benchmarks.md (blocks; issue 26's normalisation)


class Reversed:
    """An executor that finishes the blocks last to first (as a cluster may)."""

    def map(self, fn, items, *shared):
        items = list(items)
        for i in reversed(range(len(items))):
            yield i, fn(items[i], *shared)


def test_blocks_on_an_executor_equal_blocks_here(tabletop):
    scene, cams, stacks, _ = tabletop
    config, blocks = Trace3DConfig(density=None), BlockConfig(grid=(2, 1))
    here = run_blocks(scene, cams, stacks, config, blocks)
    there = run_blocks(scene, cams, stacks, config, blocks, executor=Reversed())
    assert np.array_equal(here.labels, there.labels)
