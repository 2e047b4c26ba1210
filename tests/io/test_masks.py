"""Mask stacks (.npz) and instance PNGs: round trips, atomic writes, and errors naming the file."""

import os

import numpy as np
import pytest
from PIL import Image

from gs_core.io import masks as masks_module
from gs_core.io.masks import (MaskError, labels_to_stack, load_instance_masks, load_label_map,
                              load_mask_stack, save_mask_stack)


def random_stack(m=4, h=6, w=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((m, h, w)) > 0.5


def test_stack_round_trip(tmp_path):
    masks = random_stack()
    scores = np.array([0.9, 0.5, 0.25, 1.0])
    save_mask_stack(tmp_path / "a.npz", masks, scores)
    got, got_scores = load_mask_stack(tmp_path / "a.npz")
    assert got.dtype == bool and np.array_equal(got, masks)
    assert got_scores.dtype == np.float32 and np.allclose(got_scores, scores)

    save_mask_stack(tmp_path / "sub" / "b.npz", masks)  # folders made, scores optional
    got, got_scores = load_mask_stack(tmp_path / "sub" / "b.npz")
    assert np.array_equal(got, masks) and got_scores is None


def test_empty_stack_and_integer_masks(tmp_path):
    save_mask_stack(tmp_path / "none.npz", np.zeros((0, 3, 4), bool), np.zeros(0))
    masks, scores = load_mask_stack(tmp_path / "none.npz")
    assert masks.shape == (0, 3, 4) and scores.shape == (0,)
    np.savez(tmp_path / "u8.npz", masks=random_stack().astype(np.uint8))
    assert load_mask_stack(tmp_path / "u8.npz")[0].dtype == bool


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    save_mask_stack(path, random_stack())
    assert os.listdir(tmp_path) == ["a.npz"]  # exact name: numpy did not append another .npz
    before = path.read_bytes()

    def fail(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(masks_module.np, "savez_compressed", fail)
    with pytest.raises(OSError, match="disk full"):
        save_mask_stack(path, random_stack(seed=1))
    assert os.listdir(tmp_path) == ["a.npz"] and path.read_bytes() == before


@pytest.mark.parametrize("arrays, message", [
    ({"masks": np.zeros((3, 4), bool)}, r"masks must be \[M, H, W\], got shape \(3, 4\)"),
    ({"masks": np.full((1, 3, 4), 0.5)}, "masks must be bool"),
    ({"masks": np.full((1, 3, 4), 2, np.uint8)}, "masks must be bool"),
    ({"masks": np.zeros((2, 3, 4), bool), "scores": np.zeros(3)}, r"scores must be \[M\] = \[2\]"),
    ({"masks": np.zeros((1, 3, 4), bool), "scores": np.array([np.nan])}, "scores must be finite"),
    ({"segmentation": np.zeros((1, 3, 4), bool)}, "no 'masks' array"),
])
def test_bad_stacks_name_the_file(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(MaskError, match=rf"bad\.npz: {message}"):
        load_mask_stack(tmp_path / "bad.npz")


def test_save_validates_too(tmp_path):
    with pytest.raises(MaskError, match=r"out\.npz: masks must be"):
        save_mask_stack(tmp_path / "out.npz", np.zeros((2, 2)))
    assert os.listdir(tmp_path) == []


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(MaskError, match=r"absent\.npz: no such file"):
        load_mask_stack(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MaskError, match=r"junk\.npz: not a readable"):
        load_mask_stack(tmp_path / "junk.npz")
    np.save(tmp_path / "bare.npy", np.zeros((1, 2, 2), bool))
    with pytest.raises(MaskError, match=r"bare\.npy: expected an \.npz"):
        load_mask_stack(tmp_path / "bare.npy")


def test_16bit_instance_png(tmp_path):
    labels = np.zeros((6, 7), np.uint16)
    labels[1:3, 1:4] = 300  # ids above 255 need 16 bits
    labels[4:, :2] = 7
    Image.fromarray(labels).save(tmp_path / "a.png")
    got = load_label_map(tmp_path / "a.png")
    assert got.dtype == np.int32 and np.array_equal(got, labels)
    masks, ids = load_instance_masks(tmp_path / "a.png")
    assert ids.tolist() == [7, 300]
    assert masks.shape == (2, 6, 7) and masks.dtype == bool
    assert np.array_equal(masks[1], labels == 300) and masks.sum() == np.count_nonzero(labels)


def test_8bit_and_palette_pngs(tmp_path):
    labels = np.array([[0, 1], [2, 2]], np.uint8)
    Image.fromarray(labels).save(tmp_path / "grey.png")
    Image.fromarray(labels).convert("P").save(tmp_path / "pal.png")
    assert np.array_equal(load_label_map(tmp_path / "grey.png"), labels)
    assert np.array_equal(load_label_map(tmp_path / "pal.png"), labels)


def test_labels_to_stack_without_objects():
    masks, ids = labels_to_stack(np.zeros((3, 2), np.int32))
    assert masks.shape == (0, 3, 2) and ids.shape == (0,)


def test_colour_png_is_rejected(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(MaskError, match=r"rgb\.png: .*got mode RGB"):
        load_label_map(tmp_path / "rgb.png")
    (tmp_path / "junk.png").write_bytes(b"nope")
    with pytest.raises(MaskError, match=r"junk\.png: not a readable image"):
        load_label_map(tmp_path / "junk.png")
