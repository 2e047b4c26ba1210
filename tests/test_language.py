"""Text queries: painting per-mask embeddings, relevancy, lifting and thresholding end to end on a
tiny synthetic table top with the ground-truth stand-in embedder, the work-folder round trip."""

from __future__ import annotations

import numpy as np
import pytest

from gs_core.dataset import Dataset
from gs_core.errors import UserError
from gs_core.language import LanguageField, lift_embeddings, paint, relevancy, text_query
from gs_core.synth import GroundTruth, MaskNoise, SynthConfig, build_dataset
from gs_core.synth.standins import GTEmbedder


@pytest.fixture(scope="module")
def lifted(tmp_path_factory):
    root = tmp_path_factory.mktemp("lang") / "ds"
    build_dataset(root, SynthConfig.sized("tiny", layout="tabletop"), MaskNoise.level(0.0))
    ds, gt = Dataset.load(root), GroundTruth.load(root)
    train = [ds.names.index(n) for n in gt.train]
    embedder = GTEmbedder(gt, [ds.names[v] for v in train])
    field = lift_embeddings(ds.load_scene(), [ds.cameras[v] for v in train], [ds.masks(v) for v in train],
                            embedder.embed_view, name=embedder.name)
    return field, gt, embedder


def test_paint_means_the_covering_masks():
    masks = np.zeros((2, 3, 4), bool)
    masks[0, :, :2] = True
    masks[1, :, 1:3] = True
    emb = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    out = paint(masks, emb)
    assert out.shape == (3, 4, 3)
    np.testing.assert_allclose(out[0, 0], [1, 0, 1])
    np.testing.assert_allclose(out[0, 1], [0.5, 0.5, 1])  # covered by both
    np.testing.assert_allclose(out[0, 2], [0, 1, 1])
    np.testing.assert_allclose(out[0, 3], [0, 0, 0])  # uncovered: no feature, no coverage


def test_relevancy_is_lerfs_pairwise_softmax_minimum():
    f = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    q, neg = np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.6, 0.8]])
    r = relevancy(f, q, neg, temperature=10)
    sm = lambda a, b: np.exp(10 * a) / (np.exp(10 * a) + np.exp(10 * b))  # noqa: E731
    np.testing.assert_allclose(r, [min(sm(1, 0), sm(1, 0.6)), min(sm(0, 1), sm(0, 0.8))], rtol=1e-5)


def test_text_queries_select_each_object(lifted):
    field, gt, embedder = lifted
    clean = gt.gaussians.clean
    ious = []
    for o in gt.hierarchy.things:
        q = text_query(field, gt.hierarchy.objects[o].name, embedder=embedder)
        truth = clean & (gt.gaussians.object == o)
        assert q.score.shape == truth.shape and q.selected.dtype == bool
        ious.append((q.selected & truth).sum() / (q.selected | truth).sum())
    # measured 0.59 (the book, which its table's splats bleed into) to 0.91 per object with clean masks,
    # mean 0.82. (An unrelated text is a random vector to the stand-in: it beats the four canonical
    # negatives on some object one time in five, so "selects nothing" is not testable with it.)
    assert min(ious) > 0.5 and np.mean(ious) > 0.75, ious


def test_work_folder_round_trip_and_errors(lifted, tmp_path):
    field, gt, embedder = lifted
    field.meta.update(model=None)
    field.save(tmp_path)
    back = LanguageField.load(tmp_path)
    np.testing.assert_allclose(back.features, field.features, atol=2e-3)  # float16 on disk
    assert np.array_equal(back.seen, field.seen)
    name = gt.hierarchy.objects[gt.hierarchy.things[0]].name
    a, b = text_query(field, name, embedder=embedder), text_query(tmp_path, name, embedder=embedder)
    assert (a.selected ^ b.selected).sum() <= 0.01 * a.selected.sum() + 1
    with pytest.raises(UserError, match="no CLIP features"):
        LanguageField.load(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="empty query"):
        text_query(field, "  ", embedder=embedder)

    class Narrow:
        def embed_text(self, texts):
            return np.ones((len(texts), 3), np.float32) / np.sqrt(3)

    with pytest.raises(UserError, match="3-d vectors"):
        text_query(field, "x", embedder=Narrow())
    with pytest.raises(UserError, match="name no model"):
        text_query(tmp_path, "x")
