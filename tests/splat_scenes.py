"""Small splat objects and cameras for the viewport / final-render tests, and gs_core's own render of
them with each object's transform baked into its splats (the reference)."""

import numpy as np
import torch

from gs_core import splat_transform, splat_view
from gs_core.camera import Camera
from gs_core.engine import Gaussians, project, render, sh_colors

ROUNDING = 1e-9  # float64 on both sides, a few hundred blended splats per pixel at most
STOP_T = 0.1  # the engine stops a pixel only once its transmittance is <= 1e-4 / (1 - 0.999)


def random_object(n, degree=3, seed=0, matrix=None, centre=(0.0, 0.0, 0.0), spread=0.6):
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n, 4))
    sh = np.zeros((n, (degree + 1) ** 2, 3))
    sh[:, 0] = rng.normal(size=(n, 3))
    sh[:, 1:] = 0.3 * rng.normal(size=(n, (degree + 1) ** 2 - 1, 3))
    opac = rng.uniform(0.05, 1.0, n)
    opac[: n // 8] = 0.999  # opaque ones make the engine stop pixels early
    return splat_view.ObjectSplats(
        means=np.asarray(centre) + spread * rng.normal(size=(n, 3)),
        quats=quats / np.linalg.norm(quats, axis=1, keepdims=True),
        scales=np.exp(rng.uniform(-4.0, -1.5, size=(n, 3))), opacities=opac, sh=sh,
        matrix=np.eye(4) if matrix is None else np.asarray(matrix, np.float64))


def trs(translation=(0, 0, 0), axis=(0, 0, 1), angle=0.0, scale=(1, 1, 1)):
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    R = np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K
    m = np.eye(4)
    m[:3, :3] = R @ np.diag(scale)
    m[:3, 3] = translation
    return m


def engine_picture(objects, camera):
    """gs_core's render of the objects with their transforms baked in (float64, torch backend)."""
    means, quats, scales, opac, coeffs = [], [], [], [], []
    for o in objects:
        degree_rest = o.sh[:, 1:]
        baked = splat_transform.transform_splats(o.matrix, splat_transform.Splats(
            o.means, o.quats, np.log(o.scales), degree_rest))
        means.append(baked.means)
        quats.append(baked.quats)
        scales.append(np.exp(baked.log_scales))
        opac.append(o.opacities)
        coeffs.append(np.concatenate([o.sh[:, :1], baked.sh_rest], axis=1))
    t = lambda parts: torch.as_tensor(np.concatenate(parts), dtype=torch.float64)  # noqa: E731
    g = Gaussians(t(means), torch.nn.functional.normalize(t(quats), dim=-1), t(scales), t(opac))
    proj = project(g, camera, backend="torch")
    colors = sh_colors(t(coeffs), g.means, camera)
    out = render(proj, colors, backend="torch")
    return out.features.numpy(), out.alpha.numpy()


def assert_same_picture(objects, camera):
    ref_rgb, ref_alpha = engine_picture(objects, camera)
    rgb, alpha = splat_view.composite(splat_view.project(objects, camera))
    assert ref_alpha.max() > 0.9 and (ref_alpha > 0.01).mean() > 0.3  # the splats fill the view
    T = 1.0 - ref_alpha
    stopped = T <= STOP_T  # where the engine may have stopped early: bounded by what it left out
    cmax = max(np.concatenate([splat_view.view_colors(o, camera.position) for o in objects]).max(), 1.0)
    bound = np.where(stopped, T * cmax, 0.0) + ROUNDING
    assert np.all(np.abs(rgb - ref_rgb) <= bound[..., None]), np.abs(rgb - ref_rgb).max()
    assert np.all(np.abs(alpha - ref_alpha) <= np.where(stopped, T, 0.0) + ROUNDING)
    return rgb, ref_rgb


def cam(width=64, height=48, eye=(0.4, -3.2, 0.9), target=(0.0, 0.0, 0.0)):
    return Camera.look_at(eye, target, fov_x_deg=60, width=width, height=height)


def file_splats(path, rows, matrix):
    """The PLY's splats ``rows`` as gs_core reads them (not through Blender's attributes), activated in
    float32 as the import stores them (splat_attributes' activations)."""
    from gs_core import splat_view
    from gs_core.scene import GaussianScene

    from blender_addon import splat_attributes as sa

    s = GaussianScene.load(path)
    coeffs = np.concatenate([s.sh_dc[:, None], s.sh_rest], axis=1).astype(np.float32)
    obj = splat_view.ObjectSplats(s.means.astype(np.float32), sa.normalize_quats(s.quats),
                                  sa.activate_scale(s.log_scales), sa.activate_opacity(s.opacity_logits),
                                  coeffs, np.asarray(matrix, np.float64))
    return obj.subset(rows)
