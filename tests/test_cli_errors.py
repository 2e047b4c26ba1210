"""Command-line mistakes: one line on stderr naming the argument or file, exit status 2, found before
any work starts (the work functions here fail the test if they are reached)."""

import argparse
import os
import subprocess
import sys

import pytest
import torch

import gs_core.synth
import gs_core.synth.world
from gs_core.cli import build_parser, main


@pytest.fixture
def no_work(monkeypatch):
    """Make every command's first real step fail loudly: a check must stop the command before it."""

    def started(*args, **kwargs):
        raise AssertionError("the command started working before rejecting its arguments")

    import gs_core.bench.engine
    import gs_core.bench.ply_io
    import gs_core.bench.segmentation

    monkeypatch.setattr(gs_core.synth, "make_world", started)
    monkeypatch.setattr(gs_core.synth.world, "make_world", started)
    monkeypatch.setattr(gs_core.bench.segmentation, "run_bench", started)
    monkeypatch.setattr(gs_core.bench.engine, "garden_scene", started)
    monkeypatch.setattr(gs_core.bench.ply_io, "synthetic_scene", started)


def cli(args, capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, f"more than one line:\n{err}"
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a folder")
    return path


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody may create files in (root ignores modes, so root gets a kernel folder)."""
    if os.geteuid() == 0:
        yield "/sys/gs_core_out"
        return
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    yield folder / "out"
    folder.chmod(0o700)


@pytest.mark.parametrize("command", [["demo"], ["synth"], ["bench", "segmentation"], ["bench", "ply"]])
def test_out_under_a_file(command, a_file, capsys, no_work):
    code, err = cli([*command, "--out", a_file / "sub"], capsys)
    assert code == 2
    assert err.startswith("gs-core") and "--out" in err and str(a_file) in err and "is a file" in err


@pytest.mark.parametrize("command", [["demo"], ["synth"], ["bench", "segmentation"]])
def test_out_in_an_unwritable_folder(command, unwritable, capsys, no_work):
    code, err = cli([*command, "--out", unwritable], capsys)
    assert code == 2 and "--out" in err and str(unwritable) in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="gsplat is a valid choice on this machine")
@pytest.mark.parametrize("command", [["demo"], ["synth", "--out", "x"], ["bench", "segmentation"]])
def test_gsplat_backend_without_cuda(command, tmp_path, capsys, no_work, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli([*command, "--backend", "gsplat"], capsys)
    assert code == 2 and "--backend gsplat" in err and "CUDA" in err


@pytest.mark.parametrize("command", [["demo"], ["synth", "--out", "x"], ["bench", "segmentation"]])
def test_negative_noise(command, tmp_path, capsys, no_work, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli([*command, "--noise", "-1"], capsys)
    assert code == 2 and "--noise" in err and "-1" in err


@pytest.mark.parametrize("args, names", [
    (["bench", "engine", "--repeats", "0"], "--repeats"),
    (["bench", "engine", "--rounds", "-2"], "--rounds"),
    (["bench", "engine", "--count", "-5"], "--count"),
    (["bench", "engine", "--garden", "missing.npz"], "missing.npz"),
    (["bench", "engine", "--backends", "metal"], "--backends"),
    (["bench", "ply", "--count", "0"], "--count"),
    (["bench", "addon", "--count", "1"], "--count"),
    (["demo", "--size", "huge"], "--size"),
    (["demo", "--seed", "one"], "--seed"),
])
def test_bad_numbers_and_names(args, names, tmp_path, capsys, no_work, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli(args, capsys)
    assert code == 2 and names in err


def test_json_under_a_file(a_file, capsys, no_work):
    code, err = cli(["bench", "engine", "--json", a_file / "rows.json"], capsys)
    assert code == 2 and "--json" in err and "is a file" in err


def test_help_is_instant_without_torch():
    code = ("import sys\nfrom gs_core.cli import main\n"
            "for args in (['--help'], ['bench', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("False")
    assert "``" not in result.stdout and "demo" in result.stdout and "segmentation" in result.stdout


@pytest.mark.parametrize("command", ["demo", "synth", "bench engine", "bench ply", "bench addon"])
def test_every_option_has_help_text(command):
    parser = build_parser(command)
    for word in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    undocumented = [a.option_strings for a in parser._actions if a.option_strings and not a.help]
    assert not undocumented


def test_prepare_mistake_found_inside_prepare_is_one_line(tmp_path, capsys):
    """A mistake prepare finds after it has started (no scene.ply beside the images) prints its one line
    with no progress bar, not even an empty one, before it."""
    from gs_core.synth import MaskNoise, SynthConfig, build_dataset

    dataset = tmp_path / "dataset"
    build_dataset(dataset, SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    (dataset / "scene.ply").unlink()
    assert main(["prepare", str(dataset), "--out", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err  # not stripped: a blank line before the message fails
    assert err == f"gs-core: {dataset / 'scene.ply'}: no such file; give the trained splats with --scene PLY\n"
