"""Photometric refinement: optimise a splat scene against its training photos (3DGS training without
densification), on any engine backend — on ``cpu`` through the native backward.

Each step renders one random training view (optionally a random ``crop`` x ``crop`` window of it,
pixel subsampling that keeps SSIM's neighbourhoods), and takes an Adam step on the loss of 3DGS
(Kerbl et al. 2023, Eq. 7): ``(1 - lambda) L1 + lambda (1 - SSIM)``, ``lambda = 0.2``, with 3DGS's
per-parameter learning rates (means scaled by the cameras' extent and decayed exponentially).
Parameters stay in the PLY's conventions (log-scales, opacity logits, raw quaternions, SH), so the
result is written back without losing a column. Progress is reported per step, ``should_stop``
cancels between steps, and a checkpoint (parameters, Adam state, step, random state) lets a
cancelled run resume where it stopped.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .camera import Camera
from .errors import UserError
from .engine import Gaussians, project, render, sh_colors
from .scene import GaussianScene


@dataclass(frozen=True)
class RefineConfig:
    steps: int = 1000
    # 3DGS's learning rates (train.py defaults): position (x cameras' extent, exponential decay to
    # the final value over the run), SH DC and rest (DC / 20), opacity, scaling, rotation.
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_sh_dc: float = 2.5e-3
    lr_sh_rest: float = 2.5e-3 / 20
    lr_opacity: float = 5e-2
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    ssim_weight: float = 0.2  # lambda of D-SSIM
    crop: int | None = None  # render a random crop x crop window per step (None: the whole view)
    seed: int = 0
    backend: str = "auto"
    device: str = "cpu"  # where the parameters, photos and renders live ("cuda": gsplat's backward)
    checkpoint_every: int = 50  # steps between checkpoints (when a checkpoint path is given)


@dataclass
class RefineReport:
    steps: int = 0
    resumed_from: int = 0
    psnr_before: float = float("nan")  # mean over the training views
    psnr_after: float = float("nan")
    losses: list[float] = field(default_factory=list)  # per step
    seconds: float = 0.0
    cancelled: bool = False

    def to_json(self) -> dict:
        out = asdict(self)
        out["losses"] = [round(x, 6) for x in self.losses[-20:]]  # the tail is enough for a record
        return out


# ---- loss --------------------------------------------------------------------------------------

def _window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> Tensor:  # [size]
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    w = torch.exp(-x * x / (2 * sigma * sigma))
    return w / w.sum()


def ssim(a: Tensor, b: Tensor, size: int = 11) -> Tensor:
    """Mean SSIM of images a, b [H, W, C] in [0, 1] with an 11x11 Gaussian window (sigma 1.5), as 3DGS's
    ``ssim`` (zero padding). Written here: no SSIM library is a dependency, and it must be torch
    (differentiable)."""
    C = a.shape[-1]
    w1 = _window(size, dtype=a.dtype).to(a.device)
    rows = w1.reshape(1, 1, size, 1).expand(5 * C, 1, size, 1)
    cols = w1.reshape(1, 1, 1, size).expand(5 * C, 1, 1, size)
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    # the five blurred maps at once, the Gaussian window applied as two 1D passes (separable)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    blurred = F.conv2d(F.conv2d(stack, rows, padding=(size // 2, 0), groups=5 * C), cols,
                       padding=(0, size // 2), groups=5 * C)
    mx, my, exx, eyy, exy = blurred.split(C, dim=1)
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def photometric_loss(pred: Tensor, target: Tensor, ssim_weight: float = 0.2) -> Tensor:
    """3DGS's loss (Eq. 7): ``(1 - lambda) L1 + lambda (1 - SSIM)`` of images [H, W, 3]."""
    l1 = (pred - target).abs().mean()
    if ssim_weight == 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim(pred, target))


# ---- trainable parameters ----------------------------------------------------------------------

NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


class SceneParameters:
    """A scene's arrays as torch leaves in the PLY's conventions, and their activated form."""

    def __init__(self, scene: GaussianScene, device="cpu"):
        self.kind = scene.kind

        def leaf(a):
            return torch.tensor(np.asarray(a, np.float32), device=device).requires_grad_(True)

        self.means, self.quats, self.log_scales = leaf(scene.means), leaf(scene.quats), leaf(scene.log_scales)
        self.opacity_logits = leaf(scene.opacity_logits)
        self.sh_dc, self.sh_rest = leaf(scene.sh_dc), leaf(scene.sh_rest)

    def tensors(self) -> dict[str, Tensor]:
        return {n: getattr(self, n) for n in NAMES}

    def gaussians(self) -> Gaussians:
        """Activated, differentiable: normalised quats, exp scales (2DGS: a zero third), sigmoid opacity."""
        scales = torch.exp(self.log_scales)
        if self.kind == "2dgs":
            scales = torch.cat([scales, torch.zeros_like(scales[:, :1])], dim=1)
        return Gaussians(self.means, F.normalize(self.quats, dim=-1), scales, torch.sigmoid(self.opacity_logits),
                         self.kind)

    def colors(self, camera: Camera) -> Tensor:  # [N, 3]
        return sh_colors(torch.cat([self.sh_dc[:, None], self.sh_rest], dim=1), self.means, camera)

    def to_scene(self, template: GaussianScene) -> GaussianScene:
        """``template`` with these values (its dtypes, normals, unknown columns and layout kept)."""
        def arr(t, like):
            return t.detach().cpu().numpy().astype(like.dtype)

        return replace(template, **{n: arr(getattr(self, n), getattr(template, n)) for n in NAMES})

    def param_groups(self, config: RefineConfig, extent: float) -> list[dict]:
        lrs = {"means": config.lr_means * extent, "quats": config.lr_quats, "log_scales": config.lr_scales,
               "opacity_logits": config.lr_opacity, "sh_dc": config.lr_sh_dc, "sh_rest": config.lr_sh_rest}
        return [{"params": [getattr(self, n)], "lr": lrs[n], "name": n} for n in NAMES]


def camera_extent(cameras: list[Camera]) -> float:
    """3DGS's ``spatial_lr_scale``: 1.1 x the largest distance of a camera centre from their mean."""
    centres = np.stack([c.position for c in cameras])
    return float(1.1 * max(np.linalg.norm(centres - centres.mean(0), axis=1).max(), 1e-6))


def means_lr(config: RefineConfig, extent: float, step: int, total: int) -> float:
    """Log-linear decay from ``lr_means`` to ``lr_means_final`` (3DGS's ``get_expon_lr_func``), x extent."""
    t = min(max(step / max(total, 1), 0.0), 1.0)
    return extent * math.exp((1 - t) * math.log(config.lr_means) + t * math.log(config.lr_means_final))


@torch.no_grad()
def mean_psnr(params: SceneParameters, cameras: list[Camera], images: list[Tensor], backend: str = "auto") -> float:
    """Mean PSNR (dB, peak 1) of the scene's renders (view-dependent SH colours) against ``images``."""
    g = params.gaussians()
    values = []
    for cam, img in zip(cameras, images):
        out = render(project(g, cam), params.colors(cam), backend=backend).features
        values.append(-10 * math.log10(max(float(((out - img) ** 2).mean()), 1e-10)))
    return float(np.mean(values))


# ---- checkpoints -------------------------------------------------------------------------------

def _save_checkpoint(path: Path, key: str, step: int, params: SceneParameters, opt, rng: np.random.Generator,
                     report: RefineReport) -> None:
    from .io.atomic import write_bytes

    buffer = io.BytesIO()
    torch.save({"key": key, "step": step, "params": {n: t.detach() for n, t in params.tensors().items()},
                "optimizer": opt.state_dict(), "rng": rng.bit_generator.state, "report": asdict(report)}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buffer.getvalue())


def _load_checkpoint(path: Path | None, key: str) -> dict | None:
    """The checkpoint at ``path`` if it belongs to this run (same scene, views and settings)."""
    from .io.safe_load import UnsafeFileError, load_torch

    if path is None or not path.is_file():
        return None
    try:
        state = load_torch(path, hint="delete it to start the refinement over")  # tensors only, never code
    except UnsafeFileError:
        raise
    except UserError:  # a torn file: start over
        return None
    return state if isinstance(state, dict) and state.get("key") == key else None


def _resume(state: dict, params: SceneParameters, opt, rng: np.random.Generator) -> bool:
    """Load a checkpoint of this run into ``params``, ``opt`` and ``rng``; False (nothing changed) if
    it does not fit them (a foreign file with the right key)."""
    try:
        tensors = state["params"]
        if not all(isinstance(tensors.get(n), Tensor) and tensors[n].shape == t.shape
                   for n, t in params.tensors().items()):
            return False
        RefineReport(**state["report"])
        int(state["step"])
        saved_opt, saved_rng = opt.state_dict(), rng.bit_generator.state
        try:
            opt.load_state_dict(state["optimizer"])
            rng.bit_generator.state = state["rng"]
        except Exception:
            opt.load_state_dict(saved_opt)
            rng.bit_generator.state = saved_rng
            raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError):
        return False
    with torch.no_grad():
        for n, t in params.tensors().items():
            t.copy_(tensors[n])
    return True


def run_key(scene: GaussianScene, cameras: list[Camera], config: RefineConfig) -> str:
    from .pipeline.workdir import fingerprint

    return fingerprint(scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh_dc, scene.sh_rest,
                       [(c.name, c.width, c.height, np.round(c.world_to_camera, 9).tolist()) for c in cameras],
                       repr(replace(config, backend="", device="")))  # either resumes the other's run


# ---- the loop ----------------------------------------------------------------------------------

def adam_moments(opt: torch.optim.Optimizer, params: SceneParameters) -> dict[str, dict[str, Tensor]]:
    """Adam's state per parameter name: ``step`` (a scalar tensor) and the moments ``exp_avg``,
    ``exp_avg_sq`` (each shaped like the parameter), detached copies; empty before the first step."""
    out = {}
    for n, t in params.tensors().items():
        state = opt.state.get(t, {})
        if state:
            out[n] = {k: v.detach().clone() for k, v in state.items() if k in ("step", "exp_avg", "exp_avg_sq")}
    return out


def refine(scene: GaussianScene, cameras: list[Camera], images: Callable[[int], np.ndarray],
           config: RefineConfig = RefineConfig(), *, progress: Callable[[int, int, float], None] | None = None,
           should_stop: Callable[[], bool] | None = None, checkpoint: str | Path | None = None,
           on_step: Callable[[int, SceneParameters, torch.optim.Optimizer], None] | None = None,
           moments: dict[str, dict[str, Tensor]] | None = None,
           ) -> tuple[GaussianScene, RefineReport]:
    """Optimise ``scene`` against the photos ``images(k)`` [H, W, 3] of ``cameras``; returns the refined
    scene (same rows, same columns) and a report.

    ``progress(step, steps, loss)`` after each step; ``should_stop()`` is asked before each step and
    ends the run early (``report.cancelled``) after saving a checkpoint; a checkpoint at ``checkpoint``
    from the same scene, views and settings is resumed. ``on_step(step, params, optimizer)`` runs
    after each step (:func:`adam_moments` reads the optimizer's state there). ``moments`` (as
    :func:`adam_moments` returns, one row per Gaussian of ``scene``) starts Adam from an earlier run's
    state instead of zeros: density control's retraining mode carries it across its rounds.
    """
    if not cameras:
        raise ValueError("refine needs at least one training view")
    t_start = time.perf_counter()
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    key = run_key(scene, cameras, config)
    photos = [torch.as_tensor(np.asarray(images(k), np.float32), device=config.device) for k in range(len(cameras))]
    for cam, img in zip(cameras, photos):
        if tuple(img.shape) != (cam.height, cam.width, 3):
            raise ValueError(f"view {cam.name}: image is {tuple(img.shape)}, camera is {cam.height}x{cam.width}x3")
    params = SceneParameters(scene, config.device)
    extent = camera_extent(cameras)
    opt = torch.optim.Adam(params.param_groups(config, extent), eps=1e-15)
    for n, state in (moments or {}).items():
        t = getattr(params, n)
        for k in ("exp_avg", "exp_avg_sq"):
            if tuple(state[k].shape) != tuple(t.shape):
                raise ValueError(f"moments[{n!r}][{k!r}] is {tuple(state[k].shape)}, the parameter {tuple(t.shape)}")
        opt.state[t] = {k: state[k].detach().clone().to(t.device) for k in ("step", "exp_avg", "exp_avg_sq")}
    rng = np.random.default_rng(config.seed)
    report = RefineReport()
    start = 0
    state = _load_checkpoint(checkpoint, key)
    if state is not None and _resume(state, params, opt, rng):
        report = replace(RefineReport(**state["report"]), cancelled=False)
        start = report.resumed_from = int(state["step"])
    if start == 0:
        report.psnr_before = mean_psnr(params, cameras, photos, config.backend)
    step = start
    for step in range(start, config.steps):
        if should_stop is not None and should_stop():
            report.cancelled = True
            break
        k = int(rng.integers(len(cameras)))
        cam, target = cameras[k], photos[k]
        for group in opt.param_groups:
            if group["name"] == "means":
                group["lr"] = means_lr(config, extent, step, config.steps)
        pixels = None
        if config.crop is not None and (config.crop < cam.width or config.crop < cam.height):
            cw, ch = min(config.crop, cam.width), min(config.crop, cam.height)
            x0, y0 = int(rng.integers(cam.width - cw + 1)), int(rng.integers(cam.height - ch + 1))
            ys, xs = torch.meshgrid(torch.arange(y0, y0 + ch), torch.arange(x0, x0 + cw), indexing="ij")
            pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
            target = target[y0:y0 + ch, x0:x0 + cw]
        out = render(project(params.gaussians(), cam), params.colors(cam), pixels=pixels, backend=config.backend)
        pred = out.features.reshape(target.shape)
        loss = photometric_loss(pred, target, config.ssim_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        report.losses.append(loss.item())
        report.steps = step + 1
        if on_step is not None:
            on_step(step + 1, params, opt)
        if progress is not None:
            progress(step + 1, config.steps, report.losses[-1])
        if checkpoint is not None and (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            report.seconds += time.perf_counter() - t_start
            t_start = time.perf_counter()
            _save_checkpoint(checkpoint, key, step + 1, params, opt, rng, report)
    report.seconds += time.perf_counter() - t_start
    if report.cancelled:
        if checkpoint is not None:
            _save_checkpoint(checkpoint, key, report.steps, params, opt, rng, report)
    else:
        report.psnr_after = mean_psnr(params, cameras, photos, config.backend)
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
    return params.to_scene(scene), report
