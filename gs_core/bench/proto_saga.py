"""``gs-core bench proto-saga``: why Proto-SaGa's embeddings trail here, measured on one scene.

For each option of Sec. 3.1's training (steps, pixels per step, tau, classifier init, unit
embeddings, classifier lr), one training on the scene's raw masks (geometry frozen), then:

* ``gauss_agree`` — cross-view consistency of the Gaussians' own embeddings: the share of (clean,
  trained) Gaussians whose nearest ground-truth object centre (mean unit embedding, cosine) is their
  own object. A per-view classifier only needs its view's regions apart; this asks whether one
  object's Gaussians ended up in one direction whatever views trained them;
* ``proto_agree`` — the same for what Eq. 17-19 use: every view's prototype of every ground-truth
  object (masked average of the rendered features, Eq. 17, on the ground-truth map) classified by the
  nearest mean of the *other* views' prototypes (leave one view out);
* ``pan_miou`` / ``assoc_miou`` — ``proto-saga`` (both criteria, prototype ensemble) on these
  embeddings, scored as ``gs-core bench segmentation`` scores it;
* ``pan_gt_protos`` — Eq. 17-19 with prototypes pooled on the ground-truth maps of the training
  views (a perfect association): the ceiling the embeddings allow whatever the association does;
* ``pan_2views`` — ``proto-saga`` with prototypes only for the associated ids seen in at least two
  training views (not the paper's: a probe of what its association's one-view ids cost Eq. 19).

``--curve`` trains the default once to its last step and scores checkpoints on the way.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset import Dataset
from ..engine import project, render
from ..io.atomic import atomic_write
from ..methods import proto_saga
from ..methods.base import MethodInput, MethodResult
from ..methods.proto_saga import TrainedClassifiers, classify, label_view, prototypes, view_prototypes
from ..synth import GroundTruth, MaskNoise, SynthConfig, make_world, render_views, write_dataset
from .segmentation import Evaluation, parse_scene

# option -> ClassifierConfig fields that differ from the defaults (the paper's, but tau 3 and 600 steps of 2048 pixels)
OPTIONS = {
    "default": {},
    "whole views": {"pixels_per_step": 0},  # the paper renders whole images
    "tau 10 (paper)": {"tau": 10.0},
    "tau 1": {"tau": 1.0},
    "tau 3": {"tau": 3.0},
    "tau 5": {"tau": 5.0},
    "tau 30": {"tau": 30.0},
    "random rows": {"classifier_init": "random"},  # N(0, 1) classifier rows instead of pooled ones
    "unit embeddings": {"normalize": True},
    "classifier lr x10": {"lr_classifiers": 5e-3},
    "tau 3, classifier lr x10": {"tau": 3.0, "lr_classifiers": 5e-3},
}
MIN_PIXELS = 16  # a view's prototype of an object needs this many ground-truth pixels


def gaussian_agreement(features: torch.Tensor, objects: np.ndarray) -> float:  # [K, D], [K] int >= 0
    """Share of Gaussians whose nearest object centre (mean unit embedding, cosine) is their own object."""
    if len(objects) == 0:
        return float("nan")
    unit = F.normalize(features, dim=-1, eps=1e-12)
    ids, inv = np.unique(objects, return_inverse=True)
    inv = torch.as_tensor(inv)
    centres = torch.zeros(len(ids), unit.shape[1]).index_add_(0, inv, unit)
    nearest = (unit @ F.normalize(centres, dim=-1, eps=1e-12).T).argmax(1)
    return float((nearest == inv).float().mean())


@torch.no_grad()
def prototype_agreement(projections, gt_maps: np.ndarray, features: torch.Tensor,  # gt_maps [V, H, W]
                        backend: str = "auto") -> float:
    """Leave-one-view-out: each view's ground-truth prototype (Eq. 17) of each object is classified by
    the nearest (cosine) mean of the other views' prototypes; the share that finds its own object."""
    rows = {}  # (view, object) -> prototype
    for k, (proj, gt) in enumerate(zip(projections, gt_maps)):
        area = np.bincount(gt[gt >= 0].ravel(), minlength=1)
        keep = np.where(np.isin(gt, np.flatnonzero(area >= MIN_PIXELS)), gt, -1)
        ids, protos = view_prototypes(render(proj, features, backend=backend).features, keep)
        rows.update({(k, int(o)): p for o, p in zip(ids, protos)})
    objects = sorted({o for _, o in rows})
    hits = []
    for (k, o), p in rows.items():
        others = {q: [v for (j, r), v in rows.items() if r == q and j != k] for q in objects}
        if not others[o]:
            continue  # seen in one view only: nothing to agree with
        cand = [q for q in objects if others[q]]
        means = F.normalize(torch.stack([torch.stack(others[q]).mean(0) for q in cand]), dim=-1, eps=1e-12)
        hits.append(cand[int((means @ F.normalize(p, dim=0, eps=1e-12)).argmax())] == o)
    return float(np.mean(hits)) if hits else float("nan")


class Scene:
    """One benchmark dataset (as ``bench segmentation`` writes it) with what the scores need."""

    def __init__(self, spec: str, noise: float, size: str, out: Path, backend: str):
        layout, seed = parse_scene(spec)
        world = make_world(SynthConfig.sized(size, layout=layout, seed=seed))
        views = render_views(world, world.cameras, backend=backend)
        root = write_dataset(out / "data" / f"{layout}{seed}_n{noise:g}", world, views, MaskNoise.level(noise))
        self.ds, self.gt, self.backend = Dataset.load(root), GroundTruth.load(root), backend
        self.ev = Evaluation.prepare(self.ds, self.gt, backend)
        self.inp = MethodInput(self.ds, self.ev.train, backend)
        self.views, self.stacks = proto_saga.training_views(self.inp)
        self.gaussians = self.ds.load_scene().to_gaussians()
        self.projections = [project(self.gaussians, self.ds.cameras[v]) for v in self.views]
        k = [self.ev.train.index(v) for v in self.views]
        self.gt_maps = self.ev.gt_train[k]
        self.objects = self.gt.gaussians.object.astype(np.int64)
        self.clean = self.gt.gaussians.clean & (self.objects >= 0)

    def train(self, config: proto_saga.ProtoSagaConfig, checkpoints=(), on_checkpoint=None) -> TrainedClassifiers:
        return proto_saga.train(self.projections, proto_saga.view_regions(self.stacks, config),
                                [len(m) for m in self.stacks], config,
                                checkpoints=checkpoints, on_checkpoint=on_checkpoint)

    @torch.no_grad()
    def score(self, trained: TrainedClassifiers, config: proto_saga.ProtoSagaConfig) -> dict:
        feats = trained.features
        keep = (trained.trained.numpy() & self.clean)
        t = time.perf_counter()
        result = proto_saga.segment(self.inp, config, trained=trained)
        pipeline = time.perf_counter() - t
        m = self.ev.score(result).metrics
        ceiling = self._prototype_pan(trained, self.gt_maps)  # prototypes of a perfect association
        two_views = self._prototype_pan(trained, [result.view_maps[v] for v in self.views], min_views=2)
        return {"gauss_agree": gaussian_agreement(feats[torch.as_tensor(keep)], self.objects[keep]),
                "proto_agree": prototype_agreement(self.projections, self.gt_maps, feats, self.backend),
                "pan_miou": m["pan_miou"], "pan_p": m["pan_p"], "pan_r": m["pan_r"], "assoc_miou": m["assoc_miou"],
                "pan_gt_protos": ceiling, "pan_2views": two_views, "instances": result.info["instances"],
                "classes": result.info["classes"], "loss_last": float(np.mean(trained.loss[-50:])),
                "train_s": trained.seconds, "pipeline_s": pipeline}


    @torch.no_grad()
    def _prototype_pan(self, trained: TrainedClassifiers, maps, min_views: int = 1) -> float:
        """Pan mIoU of Eq. 17-19 with prototypes pooled on ``maps`` of the training views (ids shown by
        fewer than ``min_views`` views dropped), held-out views labelled per pixel."""
        feats = trained.features
        protos = prototypes(zip(self.projections, maps), feats, self.backend)
        keep = protos.views >= min_views
        ids, vectors = protos.ids[keep], protos.vectors[keep]
        view_maps = {v: label_view(p, feats, ids, vectors, backend=self.backend)
                     for v, p in zip(self.ev.test, self.ev.test_proj)}
        labels = np.full(len(feats), -1, dtype=np.int64)
        labels[trained.trained.numpy()] = classify(feats[trained.trained], ids, vectors)[0].numpy()
        return self.ev.score(MethodResult(labels, view_maps)).metrics["pan_miou"]


def run_options(scene: Scene, names: list[str], curve: list[int], say) -> list[dict]:
    rows = []
    if curve:
        config = proto_saga.ProtoSagaConfig(classifiers=replace(proto_saga.ClassifierConfig(), steps=max(curve)),
                                            backend=scene.backend)

        def checkpoint(step, snap):
            say(f"curve: step {step}")
            rows.append({"option": f"default, {step} steps", "steps": step, **scene.score(snap, config)})

        say(f"curve: training {max(curve)} steps")
        scene.train(config, checkpoints=curve, on_checkpoint=checkpoint)
    for name in names:
        cfg = replace(proto_saga.ClassifierConfig(), **OPTIONS[name])
        config = proto_saga.ProtoSagaConfig(classifiers=cfg, backend=scene.backend)
        say(f"{name}: training {cfg.steps} steps")
        trained = scene.train(config)
        rows.append({"option": name, "steps": cfg.steps, **scene.score(trained, config)})
    return rows


KEYS = [("option", "option"), ("gauss_agree", "Gaussian agreement"), ("proto_agree", "prototype agreement"),
        ("pan_miou", "Pan mIoU"), ("pan_p", "Pan P"), ("assoc_miou", "As mIoU"),
        ("pan_gt_protos", "Pan mIoU, GT prototypes"), ("pan_2views", "Pan mIoU, ids in >= 2 views"),
        ("classes", "classes"), ("loss_last", "CE (last 50)"),
        ("train_s", "train s")]


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(t for _, t in KEYS) + " |", "|" + "---|" * len(KEYS)]
    for r in rows:
        cells = [str(r[k]) if k in ("option", "classes") else f"{r[k]:.3f}" if k == "loss_last" else
                 f"{r[k]:.0f}" if k == "train_s" else f"{100 * r[k]:.1f}" for k, _ in KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--options", nargs="*", default=list(OPTIONS), choices=list(OPTIONS),
                        help="training options to compare (each one training of the default's 600 steps)")
    parser.add_argument("--curve", nargs="*", type=int, default=[300, 600, 1200, 2400],
                        help="checkpoints of one long default training (empty: none)")
    parser.add_argument("--scene", default="tabletop:0", help="layout[:seed]")
    parser.add_argument("--noise", type=float, default=0.5, help="mask-noise level")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"])
    parser.add_argument("--out", type=Path, default=Path("bench_proto_saga"))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    say = lambda message: console.print(f"[dim]{message}[/]")  # noqa: E731
    say(f"{args.scene} noise {args.noise:g}: generating the dataset")
    scene = Scene(args.scene, args.noise, args.size, args.out, args.backend)
    rows = run_options(scene, list(args.options), sorted(set(args.curve)), say)
    text = f"Proto-SaGa training options, {args.scene} noise {args.noise:g} ({args.size}):\n\n" + markdown(rows)
    with atomic_write(args.out / "results.json", "w") as fh:
        json.dump({"scene": args.scene, "noise": args.noise, "size": args.size, "rows": rows}, fh, indent=1)
    with atomic_write(args.out / "results.md", "w") as fh:
        fh.write(text)
    console.print(text)
    return 0
