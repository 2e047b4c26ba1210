"""Reading work and user files without running code: pickles refused (their canary never made), torn
files one line naming the file, good files read as they were written."""

import builtins
import numpy as np
import pytest
import torch

from gs_core.errors import UserError
from gs_core.io.safe_load import UnsafeFileError, load_json, load_npy, load_npz, load_torch


class Evil:
    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return builtins.open, (self.canary, "w")


def evil_array(canary):
    a = np.empty(1, dtype=object)
    a[0] = Evil(canary)
    return a


def test_pickles_are_refused_and_never_run(tmp_path):
    canary = tmp_path / "canary"
    np.save(tmp_path / "a.npy", evil_array(canary), allow_pickle=True)
    np.savez(tmp_path / "b.npz", ok=np.arange(3), bad=evil_array(canary))
    (tmp_path / "c.npy").write_bytes(__import__("pickle").dumps(Evil(canary)))  # a bare pickle named .npy
    torch.save({"w": torch.zeros(2), "x": Evil(canary)}, tmp_path / "d.pt")
    for load, name in [(load_npy, "a.npy"), (load_npz, "b.npz"), (load_npy, "c.npy"), (load_torch, "d.pt")]:
        with pytest.raises(UnsafeFileError, match=rf"{name}: holds .*could run code when loaded; refused; hint"):
            load(tmp_path / name, hint="hint")
    assert not canary.exists()


def test_good_files_load(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(4, dtype=np.int32))
    np.savez_compressed(tmp_path / "b.npz", x=np.ones((2, 3)), y=np.array(5))
    torch.save({"w": torch.arange(3), "n": 2, "s": "k", "big": 2**100}, tmp_path / "c.pt")
    (tmp_path / "d.json").write_text('{"a": [1, 2]}')
    assert load_npy(tmp_path / "a.npy").tolist() == [0, 1, 2, 3]
    z = load_npz(tmp_path / "b.npz", ("x", "y"))
    assert z["x"].shape == (2, 3) and int(z["y"]) == 5
    state = load_torch(tmp_path / "c.pt")
    assert state["w"].tolist() == [0, 1, 2] and state["big"] == 2**100
    assert load_json(tmp_path / "d.json") == {"a": [1, 2]}


def test_damage_is_one_line_naming_the_file(tmp_path):
    np.savez_compressed(tmp_path / "b.npz", x=np.arange(1000))
    data = (tmp_path / "b.npz").read_bytes()
    (tmp_path / "torn.npz").write_bytes(data[:len(data) // 2])
    flipped = bytearray(data)  # a byte of the deflated member flipped: BadZipFile (CRC) or zlib.error on read
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    (tmp_path / "torn.npy").write_bytes(b"\x93NUMPY\x01\x00")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 not a zip")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "nan.json").write_text('{"a": NaN}')
    (tmp_path / "deep.json").write_text("[" * 100_000)
    cases = [(load_npz, "torn.npz", "damaged"), (load_npy, "torn.npy", "damaged"), (load_torch, "torn.pt", "damaged"),
             (load_json, "list.json", "holds a JSON list, expected an object"), (load_json, "nan.json", "NaN"),
             (load_json, "deep.json", "not readable JSON"), (load_npy, "missing.npy", "no such file"),
             (load_npy, "b.npz", "several arrays"), (lambda p: load_npz(p, ("z",)), "b.npz", "has no array 'z'")]
    for load, name, needle in cases:
        with pytest.raises(UserError, match=needle) as err:
            load(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)
        assert not isinstance(err.value, UnsafeFileError)
    with pytest.raises(UserError, match="flipped.npz") as err:
        load_npz(tmp_path / "flipped.npz")
    assert "\n" not in str(err.value)
