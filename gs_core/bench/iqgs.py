"""``gs-core bench iqgs``: IQGS's own experiments on synthetic scenes, scored like ``bench segmentation``.

* ``ablation`` (paper Tab. 3): query count ``N_q`` and feature width ``D`` on one scene, ID matching;
* ``transfer`` (paper Tab. 2): the head (``P``, ``Q'``, decoder) trained on a source scene, put on a
  target scene without fine-tuning, for ID matching (``iqgs``) and Hungarian matching (``iqgs-h``).
  Two readings of "without fine-tuning" are run, since the target's per-Gaussian attributes have to
  come from somewhere: *swapped* — the target trained with its own head, then that head replaced by
  the source's (Gaussian Grouping's classifier swap, Fig. 1e); *frozen* — the target's attributes
  trained against the source's head, which does not change. ``in-scene`` is the target trained alone.

Scores: panoptic mIoU (one matching over all test views) and PV mIoU (the paper's per-view protocol,
unmatched predictions count 0) of the per-Gaussian labels rendered at the held-out views.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..dataset import Dataset
from ..engine import project
from ..methods.iqgs import ModelConfig, TrainConfig, gaussian_labels
from ..methods import iqgs
from ..methods.base import MethodResult
from ..synth import GroundTruth, MaskNoise, SynthConfig, make_world, render_views, write_dataset
from .segmentation import Evaluation, parse_scene

ABLATION = [(50, 16), (150, 16), (300, 16), (300, 8), (300, 32)]  # (N_q, D) rows of Tab. 3


def _dataset(spec: str, noise: float, size: str, kind: str, out: Path, backend: str):
    layout, seed = parse_scene(spec)
    world = make_world(SynthConfig.sized(size, layout=layout, seed=seed, kind=kind))
    views = render_views(world, world.cameras, backend=backend)
    root = write_dataset(out / "data" / f"{layout}{seed}_{kind}_n{noise:g}", world, views, MaskNoise.level(noise))
    ds, gt = Dataset.load(root), GroundTruth.load(root)
    ev = Evaluation.prepare(ds, gt, backend)
    cams = [ds.cameras[v] for v in ev.train]
    stacks = [ds.masks(v) if ds.masks(v) is not None else np.zeros((0, c.height, c.width), bool)
              for v, c in zip(ev.train, cams)]
    return ds, ev, cams, stacks


def _scores(ev: Evaluation, labels: np.ndarray) -> dict:
    m = ev.score(MethodResult(labels)).metrics
    return {"pan_miou": m["pan_miou"], "pv_miou": m["pan_pv_miou"], "nv_miou": m["nv_miou"]}


def ablation(scene: str, noise: float, size: str, kind: str, out: Path, backend: str, say) -> list[dict]:
    ds, ev, cams, stacks = _dataset(scene, noise, size, kind, out, backend)
    rows = []
    for nq, dim in ABLATION:
        say(f"ablation N_q={nq} D={dim}")
        config = iqgs.IQGSConfig(model=ModelConfig(num_queries=nq, dim=dim), train=TrainConfig(matching="id"),
                                 backend=backend)
        t = time.perf_counter()
        r = iqgs.run(ds.load_scene(), cams, stacks, config)
        rows.append({"experiment": "ablation", "scene": scene, "N_q": nq, "D": dim, **_scores(ev, r.labels),
                     "train_s": r.stages["train"], "seconds": time.perf_counter() - t,
                     "active_queries": r.info["active_queries"], "ids_without_query": r.info.get("ids_without_query")})
    return rows


def transfer(source: str, target: str, noise: float, size: str, kind: str, out: Path, backend: str, say) -> list[dict]:
    ds_a, _, cams_a, stacks_a = _dataset(source, noise, size, kind, out, backend)
    ds_b, ev_b, cams_b, stacks_b = _dataset(target, noise, size, kind, out, backend)
    scene_b = ds_b.load_scene()
    rows = []
    for matching in ("id", "hungarian"):
        name = "iqgs" if matching == "id" else "iqgs-h"
        config = iqgs.IQGSConfig(train=TrainConfig(matching=matching), backend=backend)
        say(f"transfer {name}: source {source}")
        src = iqgs.run(ds_a.load_scene(), cams_a, stacks_a, config)
        say(f"transfer {name}: target {target} in-scene")
        own = iqgs.run(scene_b, cams_b, stacks_b, config)
        rows.append({"method": name, "setting": "in-scene", **_scores(ev_b, own.labels)})
        swapped = own.model
        swapped.head = copy.deepcopy(src.model.head)
        gaussians = scene_b.to_gaussians()
        proj = [project(gaussians, c) for c in cams_b]
        labels, _ = gaussian_labels(swapped, proj, src.training.active, own.training.trained, backend=backend)
        rows.append({"method": name, "setting": "swapped", **_scores(ev_b, labels)})
        say(f"transfer {name}: target {target}, frozen source head")
        frozen = iqgs.run(scene_b, cams_b, stacks_b, replace(config, train=replace(config.train, train_head=False)),
                          head=copy.deepcopy(src.model.head))
        rows.append({"method": name, "setting": "frozen", **_scores(ev_b, frozen.labels)})
    return [{"experiment": "transfer", "source": source, "target": target, **r} for r in rows]


def _table(rows: list[dict], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{100 * r[k]:.1f}" if k.endswith("miou") else
                                       f"{r[k]:.0f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiments", nargs="+", default=["ablation", "transfer"], choices=["ablation", "transfer"])
    parser.add_argument("--scene", default="tabletop:0", help="the ablation's scene, layout[:seed]")
    parser.add_argument("--source", default="room:0", help="transfer: the scene the head is trained on")
    parser.add_argument("--target", default="tabletop:0", help="transfer: the scene it is evaluated on")
    parser.add_argument("--noise", type=float, default=0.5, help="mask-noise level")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--kind", default="2dgs", choices=["3dgs", "2dgs"])
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"])
    parser.add_argument("--out", type=Path, default=Path("bench_iqgs"))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    say = lambda message: console.print(f"[dim]{message}[/]")  # noqa: E731
    rows, text = [], []
    if "ablation" in args.experiments:
        part = ablation(args.scene, args.noise, args.size, args.kind, args.out, args.backend, say)
        rows += part
        text.append(f"Ablation (Tab. 3), {args.scene} {args.kind} noise {args.noise:g}:\n\n"
                    + _table(part, ["N_q", "D", "pan_miou", "pv_miou", "nv_miou", "active_queries", "train_s"]))
    if "transfer" in args.experiments:
        part = transfer(args.source, args.target, args.noise, args.size, args.kind, args.out, args.backend, say)
        rows += part
        text.append(f"Transfer (Tab. 2), {args.source} -> {args.target} {args.kind} noise {args.noise:g}:\n\n"
                    + _table(part, ["method", "setting", "pan_miou", "pv_miou", "nv_miou"]))
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    (args.out / "results.md").write_text("\n\n".join(text) + "\n")
    console.print("\n\n".join(text))
    return 0
