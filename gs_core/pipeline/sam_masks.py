"""Automatic masks for a dataset that has none: the user's SAM (or SAM 2) on a covering subset of its
views, cached in ``WORK/masks/<stem>.npz`` in the SAM-style stack format of DESIGN.md.

Resumable: each view's stack is written atomically as soon as it is made, under a key of the
generator (checkpoint file, model, settings) in ``WORK/masks/generator.json``; a run stopped by
Ctrl-C continues with the views still missing, a changed generator starts over. On a CPU the
estimated time is printed before the first view (FLOPs counted on a meta-device copy of the model
over this machine's measured matmul rate, :func:`gs_core.models.sam.estimate_time`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..io.atomic import write_text
from ..io.masks import MaskError, load_mask_stack, save_mask_stack
from ..parallel import Shared, derived
from .workdir import file_fingerprint, fingerprint

SAM2_MODELS = ("sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large")
DEFAULT_BUDGET_MINUTES = 30.0
_OWN = re.compile(r"[^/\\]+\.npz")  # a file name generator.json may list (no folders: nothing outside masks/)
_TEMP = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # atomic_write's leftover after a crash


@dataclass
class SamOptions:
    """How ``prepare`` makes masks: ``--sam-checkpoint``, ``--sam-model``, ``--mask-views``..."""

    checkpoint: Path
    model: str = "auto"  # vit_h | vit_l | vit_b | sam2.1_hiera_* | auto (read from the file)
    device: str = "cpu"
    mask_views: int | None = None  # None: as many as --mask-budget affords (at least 8)
    budget_minutes: float = DEFAULT_BUDGET_MINUTES
    points_per_side: int = 32
    mask_config: object | None = None  # a full SamMaskConfig (library use: thresholds); overrides points_per_side


@dataclass
class Generator:
    """A loaded mask generator, its cache key and its estimated seconds per view (None on a GPU)."""

    generate: Callable  # image [H, W, 3] -> (masks [M, H, W], scores [M])
    key: str
    name: str
    seconds_per_view: float | None


def load_generator(options: SamOptions, image_size: tuple[int, int] = (1080, 1920), estimate: bool = True) -> Generator:
    """The user's SAM / SAM 2 checkpoint as a mask generator (one-line errors for a bad file);
    ``estimate`` measures its seconds per view on a CPU (a worker that only makes masks skips it)."""
    if options.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no NVIDIA GPU here; use --device cpu")
    from ..models.sam import SamMaskConfig, is_sam2, read_checkpoint

    state = read_checkpoint(options.checkpoint)
    config = options.mask_config or SamMaskConfig(points_per_side=options.points_per_side)
    if options.model.startswith("sam2") or (options.model == "auto" and is_sam2(state)):
        from ..models.sam2 import Sam2MaskGenerator, load_sam2

        model, spec_name = load_sam2(options.checkpoint, options.model, options.device, state)
        gen = Sam2MaskGenerator(model, config, name=spec_name)
        seconds = None  # no FLOP count for Hiera yet: the progress bar's rate is the estimate
    else:
        from ..models.sam import SamMaskGenerator, estimate_time, load_sam

        model, spec = load_sam(options.checkpoint, options.model, options.device, state)
        gen = SamMaskGenerator(model, config, name=f"sam {spec.name}")
        seconds = None
        if options.device == "cpu" and estimate:
            seconds = estimate_time(spec, config, image_size=image_size).seconds_per_view
        spec_name = spec.name
    del state
    settings = repr(config)
    key = fingerprint(file_fingerprint(Path(options.checkpoint)), spec_name, settings)
    return Generator(gen.generate, key, f"{gen.name}", seconds)


def _record(masks_dir: Path) -> dict:
    """``generator.json``: the generator's key and the files it wrote (``{}`` if missing or damaged)."""
    from ..io.safe_load import load_json

    try:
        meta = load_json(masks_dir / "generator.json", dict)
    except UserError:
        return {}
    files = meta.get("files")
    meta["files"] = [f for f in files if isinstance(f, str) and _OWN.fullmatch(f)] if isinstance(files, list) else None
    return meta


def cached_views(masks_dir: Path, key: str) -> set[str]:
    """Stems whose stack in ``masks_dir`` was made by the generator ``key``. A changed generator:
    none, and the files the record says the old one wrote are removed (so old and new masks are
    never mixed); nothing else is deleted, and a mask file the record does not list (the user's)
    is a one-line error, since prepare would read it as a view's masks."""
    meta = _record(masks_dir)
    listed = meta.get("files")
    if listed is None and meta.get("key") == key:  # a record from before files were listed
        listed = [p.name for p in masks_dir.glob("*.npz")]
    listed = set(listed or [])
    foreign = sorted(p.name for p in masks_dir.iterdir() if p.name != "generator.json" and p.name not in listed
                     and not _TEMP.fullmatch(p.name)) if masks_dir.is_dir() else []
    if foreign:
        raise UserError(f"{masks_dir}: holds files gs_core did not make ({', '.join(foreign[:3])}"
                        f"{' ...' if len(foreign) > 3 else ''}); prepare would read them as masks: move them "
                        "elsewhere (a dataset's own masks go in its masks/ folder)")
    if meta.get("key") != key:
        for name in listed:
            path = masks_dir / name
            if path.is_file() and not path.is_symlink():
                path.unlink()
        return set()
    return {Path(name).stem for name in listed if (masks_dir / name).is_file()}


def _write_record(masks_dir: Path, generator: "Generator", files: set[str]) -> None:
    write_text(masks_dir / "generator.json", json.dumps({"key": generator.key, "generator": generator.name,
                                                         "files": sorted(files)}))


def _sam_view(image: np.ndarray, shared: Shared) -> tuple[np.ndarray, np.ndarray]:  # image [H, W, 3]
    """One view's masks on a worker: the generator of ``shared`` = (SamOptions, image size) is loaded
    once per worker (the checkpoint path must exist there)."""
    generator = derived(shared, "generator", lambda v: load_generator(*v, estimate=False))
    return generator.generate(image)


def generate_dataset_masks(ds, views: list[int], generator: Generator, masks_dir: Path,
                           progress: Callable[[str, int, int], None] | None = None, executor=None,
                           options: SamOptions | None = None) -> Path:
    """SAM masks of ``ds``'s ``views`` into ``masks_dir/<stem>.npz`` (resumes; Ctrl-C safe). Each
    file is listed in ``generator.json`` before it is written, so only listed files are ever removed.
    With an ``executor`` (and the ``options`` the generator was loaded from) the views run there,
    each saved as it arrives."""
    say = progress or (lambda stage, done, total: None)
    masks_dir.mkdir(parents=True, exist_ok=True)
    done = cached_views(masks_dir, generator.key)
    files = {f"{stem}.npz" for stem in done}
    _write_record(masks_dir, generator, files)
    stems = [Path(ds.names[v]).with_suffix("").name for v in views]
    todo = []
    for v, stem in zip(views, stems):
        if stem in done:
            try:
                load_mask_stack(masks_dir / f"{stem}.npz")
                continue
            except MaskError:
                pass  # torn or foreign file: make it again
        todo.append((v, stem))
    finished = len(views) - len(todo)
    say("SAM masks", finished, len(views))
    if executor is not None and options is not None and todo:
        size = (ds.cameras[todo[0][0]].height, ds.cameras[todo[0][0]].width)
        shared = Shared((options, size))
        results = ((todo[j][1], *out) for j, out in executor.map(_sam_view, (ds.image(v) for v, _ in todo), shared))
    else:
        results = ((stem, *generator.generate(ds.image(v))) for v, stem in todo)
    for stem, masks, scores in results:
        if f"{stem}.npz" not in files:
            files.add(f"{stem}.npz")
            _write_record(masks_dir, generator, files)
        save_mask_stack(masks_dir / f"{stem}.npz", masks, scores)
        finished += 1
        say("SAM masks", finished, len(views))
    return masks_dir


def choose_views(ds, options: SamOptions, generator: Generator, say=print) -> list[int]:
    """``--mask-views`` views covering the capture, or as many as the time budget affords; prints
    the estimate on a CPU before any work."""
    from ..viewselect import covering_views, views_for_budget

    total = len(ds)
    if options.mask_views is not None:
        n = min(options.mask_views, total)
    elif generator.seconds_per_view is not None:
        n = views_for_budget(generator.seconds_per_view, options.budget_minutes * 60, total)
    else:
        n = total
    views = covering_views(ds.cameras, n)
    if generator.seconds_per_view is not None:
        s = generator.seconds_per_view
        say(f"{generator.name} on the CPU: about {s:.0f} s per view, {_duration(s * n)} for {n} of {total} views "
            f"({'--mask-views' if options.mask_views is not None else f'--mask-budget {options.budget_minutes:g} min'})")
    return views


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def masks_for_prepare(ds, work_root: Path, options: SamOptions, progress=None, say=print, executor=None):
    """The dataset with generated masks (``Dataset.with_masks``) and the views that have them.

    With no FLOP count for the model (SAM 2) on a CPU, the first covering view is made first and
    its time is the estimate for the others. ``executor`` runs the views (:mod:`gs_core.parallel`)."""
    from ..viewselect import covering_views

    t0 = time.perf_counter()
    generator = load_generator(options, (ds.cameras[0].height, ds.cameras[0].width))
    masks_dir = Path(work_root) / "masks"
    if generator.seconds_per_view is None and options.device == "cpu" and options.mask_views is None:
        t = time.perf_counter()
        generate_dataset_masks(ds, covering_views(ds.cameras, 1), generator, masks_dir, progress)
        generator.seconds_per_view = time.perf_counter() - t
    views = choose_views(ds, options, generator, say)
    generate_dataset_masks(ds, views, generator, masks_dir, progress, executor, options)
    return ds.with_masks(masks_dir), views, time.perf_counter() - t0


def has_masks(ds) -> bool:
    """Whether any view of ``ds`` has precomputed masks (stacks, PNG folders or instance PNGs)."""
    for i in range(len(ds)):
        if ds.mask_source(i) is not None:
            return True
        if ds.object_mask_dir is not None and (ds.object_mask_dir / Path(ds.names[i]).with_suffix(".png")).is_file():
            return True
    return False


def add_arguments(parser) -> None:
    """``--sam-checkpoint`` and its options (``gs-core prepare``)."""
    from ..preflight import positive_int
    from ..models.sam import SAM_MODELS

    parser.add_argument("--sam-checkpoint", type=Path, help="SAM / SAM 2.1 checkpoint (.pth / .pt): makes the masks "
                        "when the dataset has none (cached in WORK/masks, resumable)")
    parser.add_argument("--sam-model", default="auto", choices=["auto", *SAM_MODELS, *SAM2_MODELS],
                        help="checkpoint type (auto: read from the file's tensor shapes)")
    parser.add_argument("--mask-views", type=positive_int, help="views SAM runs on, spread over camera positions and "
                        "directions (default: what --mask-budget affords on a CPU, at least 8; all on a GPU)")
    parser.add_argument("--mask-budget", type=float, default=DEFAULT_BUDGET_MINUTES, metavar="MINUTES",
                        help="time the masks may take on a CPU when --mask-views is not given")
    parser.add_argument("--sam-points", type=positive_int, default=32, help="SAM's point grid per side (32: 1024 prompts)")


def options_from_args(args) -> SamOptions | None:
    if getattr(args, "sam_checkpoint", None) is None:
        return None
    if not args.mask_budget > 0:
        raise UserError(f"--mask-budget {args.mask_budget}: must be a positive number of minutes")
    return SamOptions(Path(args.sam_checkpoint), args.sam_model, args.device, args.mask_views, args.mask_budget,
                      args.sam_points)
