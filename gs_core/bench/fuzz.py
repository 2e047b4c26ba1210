"""``gs-core bench fuzz``: mutated scene files fed to the readers; every one must load or raise the
readers' own error (:class:`~gs_core.io.errors.SceneFormatError`).

Seeds are small valid files made here (INRIA PLY binary and ASCII, SPZ v2/v3/v4, .splat, PlayCanvas
compressed PLY). Each mutant is one or more of: bit flips, byte overwrites, truncation, appended
junk, and header edits that know the format (PLY element counts, types and formats; SPZ header
fields, written back inside the gzip stream so they reach the parser; v4 table-of-contents sizes).
A mutant fails the run when :meth:`GaussianScene.load` raises anything else (a crash), takes longer
than ``--timeout`` seconds (a hang), or allocates more than ``--memory-mb`` at its peak (tracemalloc,
which sees numpy's buffers).
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import struct
import tempfile
import time
import tracemalloc
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUFFIX = {"ply": ".ply", "ply_ascii": ".ply", "compressed_ply": ".ply", "spz_v2": ".spz", "spz_v3": ".spz",
          "spz_v4": ".spz", "splat": ".splat"}


class _Timeout(Exception):
    pass


@dataclass
class FuzzReport:
    count: int = 0
    loaded: int = 0
    rejected: int = 0
    failures: list[str] = field(default_factory=list)  # crashes, hangs, unbounded allocations
    seconds: float = 0.0
    slowest_s: float = 0.0
    slowest: str = ""  # which mutant took slowest_s
    peak_mb: float = 0.0
    by_seed: dict[str, list[int]] = field(default_factory=dict)  # seed -> [loaded, rejected]


def _scene(n: int, degree: int, rng, kind: str = "3dgs"):
    from ..scene import GaussianScene

    f = np.float32
    q = rng.standard_normal((n, 4))
    return GaussianScene(
        means=rng.uniform(-3, 3, (n, 3)).astype(f), quats=(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(f),
        log_scales=rng.uniform(-6, 0, (n, 3 if kind == "3dgs" else 2)).astype(f),
        opacity_logits=rng.uniform(-3, 3, n).astype(f), sh_dc=rng.uniform(-1, 1, (n, 3)).astype(f),
        sh_rest=rng.uniform(-0.5, 0.5, (n, (degree + 1) ** 2 - 1, 3)).astype(f))


def _compressed_ply(n: int, rng, sh_bands: int = 1) -> bytes:
    """A valid PlayCanvas compressed PLY (random packed words inside random chunk bounds)."""
    chunks = -(-n // 256)
    names = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y", "min_scale_z",
             "max_scale_x", "max_scale_y", "max_scale_z", "min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
    lines = ["ply", "format binary_little_endian 1.0", f"element chunk {chunks}"]
    lines += [f"property float {name}" for name in names]
    lines += [f"element vertex {n}"] + [f"property uint packed_{p}" for p in ("position", "rotation", "scale", "color")]
    rest = 3 * ((sh_bands + 1) ** 2 - 1)
    lines += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(rest)] + ["end_header"]
    lo = rng.uniform(-2, 0, (chunks, 9)).astype("<f4")
    bounds = np.concatenate([lo[:, :3], lo[:, :3] + 1, lo[:, 3:6] - 3, lo[:, 3:6] - 1, lo[:, 6:] + 1,
                             lo[:, 6:] + 2], 1).astype("<f4")  # [chunks, 18] in the header's order
    words = rng.integers(0, 2**32, (n, 4), dtype=np.uint64).astype("<u4")
    sh = rng.integers(0, 256, (n, rest), dtype=np.uint8)
    return ("\n".join(lines) + "\n").encode() + bounds.tobytes() + words.tobytes() + sh.tobytes()


def _ascii_ply(table) -> bytes:
    """An ASCII PLY of ``table`` (float32 columns as 9 significant digits: exact on reading back)."""
    names = list(table.columns)
    lines = ["ply", "format ascii 1.0", f"element vertex {len(table)}", *(f"property float {n}" for n in names),
             "end_header"]
    rows = np.stack([table.columns[n] for n in names], axis=1)
    lines += [" ".join(f"{v:.9g}" for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def make_seeds(rng) -> dict[str, bytes]:
    """Small valid files of every readable type, written by gs_core (PLY, SPZ, .splat) or built here."""
    from ..io import spz, splat
    from ..io.ply import write_ply_table

    seeds = {}
    with tempfile.TemporaryDirectory(prefix="gs-core-fuzz-seed-") as tmp:
        scene = _scene(24, 1, rng)
        path = Path(tmp) / "seed.ply"
        scene.save(path)
        seeds["ply"] = path.read_bytes()
        seeds["ply_ascii"] = _ascii_ply(_scene(6, 0, rng).to_table())
    for version in (2, 3, 4):
        seeds[f"spz_v{version}"] = spz.encode_spz(_scene(20, 1 if version != 3 else 2, rng), version)
    seeds["splat"] = splat.encode_splat(_scene(12, 0, rng)).tobytes()
    seeds["compressed_ply"] = _compressed_ply(40, rng)
    return seeds


# ---- mutations ----------------------------------------------------------------------------------

_HUGE = (0, 1, 2, 7, 255, 256, 65535, 2**24, 2**31 - 1, 2**31, 2**32 - 1)


def _bitflips(data: bytearray, rng) -> None:
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(0, len(data)))
        data[i] ^= 1 << int(rng.integers(0, 8))


def _bytes(data: bytearray, rng) -> None:
    for _ in range(int(rng.integers(1, 5))):
        i = int(rng.integers(0, len(data)))
        data[i] = int(rng.choice([0, 0xFF, 0x7F, 0x80, int(rng.integers(0, 256))]))


def _ply_header(data: bytes, rng) -> bytes:
    end = data.find(b"end_header")
    if end < 0:
        return data
    lines = data[:end].split(b"\n")
    i = int(rng.integers(0, len(lines)))
    words = lines[i].split(b" ")
    choice = int(rng.integers(0, 5))
    if words[0] == b"element" and len(words) == 3:
        counts = _HUGE + (int(words[2]) + 1, max(0, int(words[2]) - 1), 10**12) if words[2].isdigit() else _HUGE
        words[2] = str(counts[int(rng.integers(0, len(counts)))]).encode()
    elif words[0] == b"property" and choice < 2:
        words[1] = rng.choice([b"double", b"uchar", b"int", b"short", b"list", b"float16", b"uint"])
    elif words[0] == b"format":
        words[1] = rng.choice([b"ascii", b"binary_big_endian", b"binary_little_endian", b"binary_middle_endian"])
    elif choice == 2:
        words = [b"property", b"float", b"x"]  # duplicate / misplaced property
    elif choice == 3:
        del lines[i]
        return b"\n".join(lines) + data[end:]
    else:
        words = [b"element", b"vertex", str(_HUGE[int(rng.integers(0, len(_HUGE)))]).encode()]
    lines[i] = b" ".join(words)
    return b"\n".join(lines) + data[end:]


def _spz_header_fields(head: bytearray, rng, v4: bool) -> None:
    # offsets: magic 0, version 4, count 8, degree 12, fractional bits 13, flags 14, (v4: streams 15, toc 16)
    fields = [(4, "<I"), (8, "<I"), (12, "B"), (13, "B"), (14, "B")] + ([(15, "B"), (16, "<I")] if v4 else [])
    offset, fmt = fields[int(rng.integers(0, len(fields)))]
    limit = 2**32 if fmt == "<I" else 256
    value = _HUGE[int(rng.integers(0, len(_HUGE)))] % limit if rng.random() < 0.7 else int(rng.integers(0, limit))
    struct.pack_into(fmt, head, offset, value)


def _spz_header(data: bytes, rng) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            raw = bytearray(gzip.decompress(data))
        except Exception:  # noqa: BLE001 - an already-broken seed: leave it
            return data
        _spz_header_fields(raw, rng, v4=False)
        if rng.random() < 0.3:
            raw = raw[: int(rng.integers(0, len(raw)))]
        return gzip.compress(bytes(raw))
    head = bytearray(data)
    if len(head) >= 32:
        if rng.random() < 0.3:  # table of contents: a stream's compressed or raw size
            toc = struct.unpack_from("<I", head, 16)[0]
            slot = toc + 8 * int(rng.integers(0, 2 * max(1, head[15])))
            if slot + 8 <= len(head):
                values = _HUGE + (2**63, 2**64 - 1)
                struct.pack_into("<Q", head, slot, values[int(rng.integers(0, len(values)))])
        else:
            _spz_header_fields(head, rng, v4=True)
    return bytes(head)


def mutate(data: bytes, kind: str, rng) -> bytes:
    """One mutant of ``data`` (a seed of ``kind``)."""
    out = bytes(data)
    for _ in range(int(rng.integers(1, 3))):
        op = int(rng.integers(0, 5))
        if op == 0:
            buf = bytearray(out)
            _bitflips(buf, rng) if buf else None
            out = bytes(buf)
        elif op == 1:
            buf = bytearray(out)
            _bytes(buf, rng) if buf else None
            out = bytes(buf)
        elif op == 2:
            out = out[: int(rng.integers(0, len(out) + 1))]
        elif op == 3:
            out = out + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        else:
            out = _spz_header(out, rng) if kind.startswith("spz") else \
                _ply_header(out, rng) if kind.endswith("ply") or kind == "ply_ascii" else out
    return out


# ---- running --------------------------------------------------------------------------------------

def _on_alarm(signum, frame):
    raise _Timeout()


def run_fuzz(count: int, seed: int = 0, timeout_s: float = 10.0, memory_mb: float = 256.0,
             folder: Path | None = None, progress=None) -> FuzzReport:
    """Feed ``count`` mutants (round robin over the seeds) to :meth:`GaussianScene.load`."""
    from ..io.errors import SceneFormatError
    from ..scene import GaussianScene

    rng = np.random.default_rng(seed)
    seeds = make_seeds(rng)
    names = sorted(seeds)
    report = FuzzReport(by_seed={name: [0, 0] for name in names})
    use_alarm = hasattr(signal, "setitimer")
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gs-core-fuzz-") as tmp:
        folder = Path(folder or tmp)
        for i in range(count):
            kind = names[i % len(names)]
            data = mutate(seeds[kind], kind, rng)
            path = folder / f"mutant{i}{SUFFIX[kind]}"
            path.write_bytes(data)
            tracemalloc.start()
            t0 = time.perf_counter()
            try:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, timeout_s)
                try:
                    GaussianScene.load(path)
                finally:
                    if use_alarm:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                report.loaded += 1
                report.by_seed[kind][0] += 1
            except SceneFormatError:
                report.rejected += 1
                report.by_seed[kind][1] += 1
            except _Timeout:
                report.failures.append(f"mutant {i} ({kind}): no answer within {timeout_s} s")
            except Exception as exc:  # noqa: BLE001 - the point: anything else is a reader bug
                line = traceback.format_exception_only(type(exc), exc)[-1].strip()
                report.failures.append(f"mutant {i} ({kind}): {line}")
                keep = os.environ.get("GS_CORE_FUZZ_KEEP")  # a folder to keep crashing mutants in
                if keep:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    (Path(keep) / f"crash_{i}{SUFFIX[kind]}").write_bytes(data)
            elapsed = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            path.unlink()  # (a fresh name each time: never truncate a file a reader may still map)
            if elapsed > report.slowest_s:
                report.slowest_s, report.slowest = elapsed, f"mutant {i} ({kind}, {len(data):,} bytes)"
            report.peak_mb = max(report.peak_mb, peak)
            if peak > memory_mb:
                report.failures.append(f"mutant {i} ({kind}): allocated {peak:.0f} MB for a {len(data):,}-byte file")
            report.count += 1
            if progress is not None:
                progress(i + 1, count)
    if use_alarm:
        signal.signal(signal.SIGALRM, old)
    report.seconds = time.perf_counter() - start
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("--count", type=positive_int, default=10_000, help="mutants to run (default 10,000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (a run is reproducible)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a mutant may take (a hang)")
    parser.add_argument("--memory-mb", type=float, default=256.0, help="peak allocation allowed per mutant")


def run(args) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("fuzzing the readers", total=args.count)
        report = run_fuzz(args.count, args.seed, args.timeout, args.memory_mb,
                          progress=lambda done, total: bar.update(task, completed=done))
    table = Table(title=f"Reader fuzz: {report.count:,} mutants, seed {args.seed}, {report.seconds:.1f} s")
    for column in ("seed file", "loaded", "rejected (reader error)"):
        table.add_column(column, justify="left" if column == "seed file" else "right")
    for name, (loaded, rejected) in report.by_seed.items():
        table.add_row(name, f"{loaded:,}", f"{rejected:,}")
    console.print(table)
    console.print(f"crashes, hangs or unbounded allocations: {len(report.failures)}; slowest: {report.slowest}, "
                  f"{report.slowest_s * 1e3:.0f} ms; largest peak allocation {report.peak_mb:.1f} MB")
    for line in report.failures[:20]:
        console.print(f"  [red]{line}[/red]")
    return 1 if report.failures else 0


__all__ = ["FuzzReport", "make_seeds", "mutate", "run_fuzz"]
