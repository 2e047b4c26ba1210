"""SAM loading from checkpoint files, the automatic generator and the point predictor on a tiny
randomly initialised SAM, the checkpoint-type detection on the released architectures' shapes."""

from __future__ import annotations

import numpy as np
import pytest

from gs_core.errors import UserError

from tiny_models import TINY_SAM

torch = pytest.importorskip("torch")


def _image(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    img[8:30, 10:40] = [0.9, 0.2, 0.1]
    img[20:44, 34:60] = [0.1, 0.3, 0.9]
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)


def test_absorb_drops_a_mask_a_later_one_nearly_equals():
    from gs_core.models.sam import absorb_masks

    m = np.zeros((4, 10, 10), bool)
    m[0, :, :] = True  # 100 px
    m[1, :, :9] = True  # 90 px: covers 90% of mask 0, not more: both stay
    m[2, :5, :5] = True  # 25 px
    m[3, :5, :5] = True
    m[3, 0, 0] = False  # 24 px: covers 96% of mask 2: mask 2 is absorbed
    assert absorb_masks(m, 0.9).tolist() == [0, 1, 3]
    assert absorb_masks(m, 0.85).tolist() == [1, 3]  # now mask 1 covers more than 85% of mask 0


@pytest.mark.parametrize("name", ["vit_h", "vit_l", "vit_b"])
def test_checkpoint_type_from_the_released_shapes(name):
    pytest.importorskip("segment_anything")
    from segment_anything import sam_model_registry

    from gs_core.models.sam import SamSpec, spec_from_state_dict

    with torch.device("meta"):  # the real architecture's shapes, nothing allocated
        state = sam_model_registry[name]().state_dict()
    spec = spec_from_state_dict(state)
    assert spec.name == name and spec == SamSpec.released(name)


def test_tiny_checkpoint_round_trip(tiny_sam_checkpoint, tmp_path):
    from gs_core.models.sam import SamSpec, load_sam

    sam, spec = load_sam(tiny_sam_checkpoint)
    assert spec == SamSpec(**TINY_SAM) and spec.name == "custom"
    saved = torch.load(tiny_sam_checkpoint, weights_only=True)
    for k, v in sam.state_dict().items():
        assert torch.equal(v, saved[k]), k
    wrapped = tmp_path / "wrapped.pt"  # SAM 2-style {"model": state_dict} files are unwrapped
    torch.save({"model": saved}, wrapped)
    assert load_sam(wrapped)[1] == spec


def test_bad_checkpoints_are_one_line_errors(tiny_sam_checkpoint, tmp_path):
    from gs_core.models.sam import load_sam

    def fails(path, *needles, **kw):
        with pytest.raises(UserError) as exc:
            load_sam(path, **kw)
        msg = str(exc.value)
        assert "\n" not in msg and str(path) in msg, msg
        for n in needles:
            assert n in msg, msg

    fails(tmp_path / "nope.pth", "no such file", "github.com/facebookresearch/segment-anything")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    fails(junk, "not a readable PyTorch checkpoint", "segment-anything")
    other = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2, 2)}, other)
    fails(other, "not a SAM")
    state = torch.load(tiny_sam_checkpoint, weights_only=True)
    del state["mask_decoder.iou_token.weight"]
    cut = tmp_path / "cut.pth"
    torch.save(state, cut)
    fails(cut, "does not fit", "iou_token")
    fails(tiny_sam_checkpoint, "custom", "not --sam-model vit_b", model_type="vit_b")


def test_automatic_masks_on_a_small_image(tiny_sam_checkpoint):
    """The real SamAutomaticMaskGenerator end to end; a random model's scores are meaningless, so
    its quality filters are opened and our post-processing is what is checked."""
    from gs_core.models.sam import SamMaskConfig, SamMaskGenerator, load_sam

    sam, _ = load_sam(tiny_sam_checkpoint)
    config = SamMaskConfig(points_per_side=6, pred_iou_thresh=-1e9, stability_score_thresh=-1e9, box_nms_thresh=0.9,
                           min_area=20)
    masks, scores = SamMaskGenerator(sam, config).generate(_image())
    assert masks.dtype == bool and masks.ndim == 3 and masks.shape[1:] == (48, 64)
    assert len(masks) >= 1 and scores.shape == (len(masks),) and scores.dtype == np.float32
    area = masks.reshape(len(masks), -1).sum(1)
    assert (area > 20).all() and (np.diff(area) <= 0).all()  # min area, largest first
    for i in range(len(masks)):  # nothing left that a later mask covers more than 90% of
        for j in range(i + 1, len(masks)):
            assert (masks[i] & masks[j]).sum() <= 0.9 * area[i]


def test_trace3d_defaults():
    from gs_core.models.sam import SamMaskConfig

    c = SamMaskConfig()
    assert (c.stability_score_thresh, c.absorb_cover, c.points_per_side) == (0.9, 0.9, 32)


def test_point_predictor(tiny_sam_checkpoint):
    from gs_core.models.sam import SamPointPredictor, load_sam

    predictor = SamPointPredictor(load_sam(tiny_sam_checkpoint)[0])
    image = _image()
    mask, score = predictor.predict(image, np.array([[20, 15]]), np.array([1]))
    assert mask.shape == (48, 64) and mask.dtype == bool and np.isfinite(score)
    mask2, _ = predictor.predict(image, np.array([[20, 15], [50, 30]]), np.array([1, 0]))
    assert mask2.shape == (48, 64)
    # the same prompts on the same image give the same answer (embedding cached, not stale)
    again, _ = predictor.predict(image, np.array([[20, 15]]), np.array([1]))
    assert np.array_equal(again, mask)
    other, _ = predictor.predict(_image(seed=1)[::-1].copy(), np.array([[20, 15]]), np.array([1]))
    assert other.shape == (48, 64)


def test_flop_count_scales_with_prompts():
    pytest.importorskip("segment_anything")
    from gs_core.models.sam import SamSpec, count_flops

    spec = SamSpec(**TINY_SAM)
    enc8, dec8 = count_flops(spec, points_per_side=8, points_per_batch=64)
    enc16, dec16 = count_flops(spec, points_per_side=16, points_per_batch=64)
    assert enc8 == enc16 > 0
    assert dec16 == pytest.approx(4 * dec8, rel=1e-9)
    enc_b, _ = count_flops(SamSpec.released("vit_b"), points_per_side=1, points_per_batch=1)
    assert enc_b > 100 * enc8


@pytest.fixture(scope="module")
def sam2_checkpoint(tmp_path_factory):
    """SAM 2.1 tiny, the real architecture (39M parameters), random weights, saved like the released .pt."""
    pytest.importorskip("torchvision")
    pytest.importorskip("sam2")
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.mark.slow  # builds the 39M-parameter model and runs it at 1024 px: about a minute on 2 busy cores
def test_sam2_behind_the_same_interface(sam2_checkpoint, tmp_path):
    from gs_core.models.sam import SamMaskConfig
    from gs_core.models.sam2 import Sam2MaskGenerator, Sam2PointPredictor, load_sam2

    model, name = load_sam2(sam2_checkpoint)
    assert name == "sam2.1_hiera_tiny"
    with pytest.raises(UserError, match="holds sam2.1_hiera_tiny, not --sam-model sam2.1_hiera_large"):
        load_sam2(sam2_checkpoint, "sam2.1_hiera_large")
    with pytest.raises(UserError, match="no such file"):
        load_sam2(tmp_path / "none.pt")
    config = SamMaskConfig(points_per_side=3, pred_iou_thresh=-1e9, stability_score_thresh=-1e9, min_area=20)
    masks, scores = Sam2MaskGenerator(model, config).generate(_image())
    assert masks.shape[1:] == (48, 64) and masks.dtype == bool and scores.shape == (len(masks),)
    mask, score = Sam2PointPredictor(model).predict(_image(), np.array([[20, 15]]), np.array([1]))
    assert mask.shape == (48, 64) and mask.dtype == bool and np.isfinite(score)


def test_machine_rate_counts_a_product_even_when_the_clock_jumps(monkeypatch):
    """A loaded machine can preempt the process for longer than the timing window before the first
    check: the rate must still count one product, never 0 (estimate_time divides by it)."""
    from gs_core.models import sam

    ticks = iter([0.0, 5.0, 5.0, 5.0])  # t0, then every later reading already past the 0.3 s window
    monkeypatch.setattr(sam, "_RATE", None)
    monkeypatch.setattr(sam.time, "perf_counter", lambda: next(ticks))
    rate = sam.machine_flops_per_second()
    assert rate == pytest.approx(2 * 1024 ** 3 / 5.0)
    monkeypatch.setattr(sam, "_RATE", None)
