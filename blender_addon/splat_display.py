"""What the viewport draw and the final render show of a splat object, without Blender (numpy only).

A splat object's attributes (:mod:`.splat_attributes`) become a :class:`splat_view.ObjectSplats`
(its splats in its own frame, hidden ones left out, and its world matrix): the viewport shader
(:mod:`.splat_draw`) and the backend's final render (:mod:`.splat_render`) both start from it. The
shader's per-splat data is packed here too (:func:`pack_splats`), so the layout the GLSL reads is
tested without a GPU.
"""

from __future__ import annotations

import time
import zlib

import numpy as np

from . import splat_attributes as sa
from .gs_core_modules import sh, splat_transform, splat_view

SELECTION = ".selection"
HIGHLIGHT = np.array([1.0, 0.55, 0.1])  # the selection's tint (Blender's selected-object orange)
HIGHLIGHT_MIX = 0.5


def attribute_names(names) -> list[str]:
    """The attributes :func:`object_splats` reads, of those an object has (``names``)."""
    wanted = [sa.POSITION, sa.BASE, sa.SCALE, sa.ROTATION, sa.HIDDEN, SELECTION]
    wanted += [sa.sh_attribute(k) for k in range(sa.count_sh_attributes(names))]
    return [n for n in wanted if n in names]


def object_splats(attributes: dict, matrix, keep_hidden: bool = False) -> splat_view.ObjectSplats:
    """An object's splats from its attribute arrays (name -> [N] / [N, C], as
    ``splat_object.read_attributes`` gives them) and world matrix [4, 4]; ``gs:hidden`` splats are
    left out unless ``keep_hidden``."""
    base = np.asarray(attributes[sa.BASE], np.float32)
    n = len(base)
    rest = sa.count_sh_attributes(attributes)
    coeffs = np.empty((n, rest + 1, 3), np.float32)
    coeffs[:, 0] = base[:, :3]
    for k in range(rest):
        coeffs[:, k + 1] = attributes[sa.sh_attribute(k)]
    obj = splat_view.ObjectSplats(means=np.asarray(attributes[sa.POSITION], np.float32),
                                  quats=np.asarray(attributes[sa.ROTATION], np.float32),
                                  scales=np.asarray(attributes[sa.SCALE], np.float32),
                                  opacities=base[:, 3].copy(), sh=coeffs,
                                  matrix=np.asarray(matrix, np.float64).reshape(4, 4))
    hidden = attributes.get(sa.HIDDEN)
    if hidden is not None and not keep_hidden and hidden.any():
        obj = obj.subset(~np.asarray(hidden, bool))
    return obj


def content_key(obj: splat_view.ObjectSplats) -> str:
    """A short key of the splats' values (not the matrix): CRC-32 over every array, and the count."""
    crc = 0
    for name in ("means", "quats", "scales", "opacities", "sh"):
        crc = zlib.crc32(np.ascontiguousarray(getattr(obj, name), np.float32).data, crc)
    return f"{len(obj)}-{crc:08x}"


def display_colors(obj: splat_view.ObjectSplats, selected=None, instance_colors=None):
    """SH coefficients [N, K, 3] for display: the object's own, or flat instance colours ([N, 3] linear
    RGB, turned into a DC term), tinted toward :data:`HIGHLIGHT` where ``selected`` [N] bool. A flat
    colour ``c`` (with the +0.5 offset of the SH colour) is the DC coefficient ``(c - 0.5) / SH_C0``."""
    coeffs = np.asarray(obj.sh, np.float32)
    if instance_colors is None and (selected is None or not np.any(selected)):
        return coeffs
    if instance_colors is not None:
        srgb = linear_to_srgb(np.asarray(instance_colors, np.float64))
        coeffs = np.zeros((len(obj), 1, 3), np.float32)
        coeffs[:, 0] = (srgb - 0.5) / sh.SH_C0
    if selected is not None and np.any(selected):
        coeffs = coeffs.copy()
        sel = np.asarray(selected, bool)
        # mix the DC colour toward the highlight, fade the view-dependent part alike
        dc = coeffs[sel, 0] * sh.SH_C0 + 0.5
        coeffs[sel, 0] = ((1 - HIGHLIGHT_MIX) * dc + HIGHLIGHT_MIX * HIGHLIGHT - 0.5) / sh.SH_C0
        coeffs[sel, 1:] *= 1 - HIGHLIGHT_MIX
    return coeffs


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """Blender's scene-linear from display (sRGB-encoded) values; negative values stay as they are."""
    s = np.asarray(srgb, np.float64)
    return np.where(s <= 0.04045, s / 12.92, ((np.maximum(s, 0.04045) + 0.055) / 1.055) ** 2.4)


# ---- the shader's per-splat data ------------------------------------------------------------------

TEXELS_PER_SPLAT_BASE = 3  # mean + object id, covariance (6), opacity + colour count
TEXTURE_WIDTH = 4096  # 4096 x 16384 texels: 4.4M splats at SH degree 3


def pack_splats(objects: list[splat_view.ObjectSplats], degree: int = 3) -> np.ndarray:
    """The viewport shader's per-splat data, RGBA float32 texels, ``3 + ceil(K * 3 / 4)`` per splat (K =
    (degree + 1)^2 coefficients kept), in object order:

    * texel 0: object-space mean (x, y, z), object index;
    * texel 1-2: object-space covariance (xx, xy, xz, yy), (yz, zz, opacity, 0);
    * then the SH coefficients, channel-interleaved (c0.r, c0.g, c0.b, c1.r, ...), zero-padded.

    Returns [N * texels, 4]. The object's matrix goes to the shader separately (it changes without the
    splats changing).
    """
    k = (degree + 1) ** 2
    per = texels_per_splat(degree)
    total = sum(len(o) for o in objects)
    out = np.zeros((total, per * 4), np.float32)
    start = 0
    for index, o in enumerate(objects):
        n = len(o)
        rows = out[start:start + n]
        rows[:, 0:3] = o.means
        rows[:, 3] = index
        M = splat_transform.quat_to_matrix(o.quats) * np.asarray(o.scales, np.float64)[:, None, :]
        cov = M @ M.transpose(0, 2, 1)
        rows[:, 4:8] = np.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1]], 1)
        rows[:, 8:11] = np.stack([cov[:, 1, 2], cov[:, 2, 2], o.opacities], 1)
        coeffs = np.asarray(o.sh, np.float32)[:, :k]  # a lower degree leaves the rest zero
        rows[:, 12:12 + coeffs.shape[1] * 3] = coeffs.reshape(n, coeffs.shape[1] * 3)  # n may be 0 (all hidden)
        start += n
    return out.reshape(total * per, 4)


def texels_per_splat(degree: int) -> int:
    return TEXELS_PER_SPLAT_BASE + -(-((degree + 1) ** 2) * 3 // 4)


def project_packed(packed: np.ndarray, objects_texture: np.ndarray, camera, degree: int = 3):
    """What the vertex shader computes from the textures it reads (``packed`` from :func:`pack_splats`,
    ``objects_texture`` from :func:`object_rows`): the GLSL of :mod:`.splat_draw` is this function line
    for line, and the tests check it equals :func:`splat_view.project` of the objects."""
    k = (degree + 1) ** 2
    splats = np.asarray(packed, np.float64).reshape(-1, texels_per_splat(degree) * 4)
    index = splats[:, 3].astype(int)
    rows = np.asarray(objects_texture, np.float64)[index]  # [N, 6, 4]
    A, t, Ainv = rows[:, :3, :3], rows[:, :3, 3], rows[:, 3:6, :3]
    xx, xy, xz, yy, yz, zz = (splats[:, i] for i in (4, 5, 6, 7, 8, 9))
    S = np.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], 1).reshape(-1, 3, 3)
    local = splats[:, 0:3]
    means = np.einsum("nij,nj->ni", A, local) + t
    covs = A @ S @ A.transpose(0, 2, 1)
    eye_world = np.linalg.inv(splat_view.camera_fields(camera)[6])[:3, 3]
    dirs = local - np.einsum("nij,nj->ni", Ainv, eye_world - t)  # camera -> splat, in the object's frame
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    colors = np.maximum(sh.evaluate(splats[:, 12:12 + 3 * k].reshape(-1, k, 3), dirs) + 0.5, 0.0)
    return splat_view.project_world(means, covs, colors, splats[:, 10], camera)


def texture_shape(texels: int, width: int = TEXTURE_WIDTH) -> tuple[int, int]:
    """(width, height) of a 2D texture holding ``texels`` in row-major order."""
    return width, max(1, -(-texels // width))


def object_rows(objects: list[splat_view.ObjectSplats]) -> np.ndarray:
    """Per object, the shader's object texture row: matrix rows 0-2 (A | t), then A^-1 rows 0-2
    (zero-padded): [O, 6, 4]."""
    out = np.zeros((len(objects), 6, 4), np.float32)
    for i, o in enumerate(objects):
        A = np.asarray(o.matrix, np.float64)
        out[i, :3] = A[:3]
        out[i, 3:, :3] = np.linalg.inv(A[:3, :3])
    return out


def view_depths(objects: list[splat_view.ObjectSplats], world_to_camera) -> np.ndarray:  # -> [N] float32
    """Camera-space z of every splat (the sort key of the back-to-front draw), in object order."""
    w2c = np.asarray(world_to_camera, np.float64).reshape(4, 4)
    parts = []
    for o in objects:
        m = w2c @ np.asarray(o.matrix, np.float64)
        parts.append(np.asarray(o.means, np.float32) @ m[2, :3].astype(np.float32) + np.float32(m[2, 3]))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def draw_order(depths: np.ndarray) -> np.ndarray:  # [N] -> [N] int, back to front
    """Farthest first; ties keep the engine's front-to-back tie order (lower index in front), reversed."""
    return np.argsort(depths, kind="stable")[::-1]


def coarse_draw_order(depths: np.ndarray) -> np.ndarray:  # [N] -> [N] int, back to front
    """Back to front by depth quantised to 16 bits over the splats' depth range: a radix sort (numpy's
    stable sort of uint16), several times faster than :func:`draw_order`; splats closer in depth than
    1/65535 of the range may be drawn in either order."""
    depths = np.asarray(depths, np.float32)
    if len(depths) == 0:
        return np.zeros(0, np.int64)
    lo, hi = float(depths.min()), float(depths.max())
    scale = 65535.0 / (hi - lo) if hi > lo else 0.0
    return np.argsort(((hi - depths) * scale).astype(np.uint16), kind="stable")


class SortState:
    """When and how the viewport sorts (progressive: coarse while moving, exact when still).

    The order is sorted exactly (:func:`draw_order`) whenever the view or an object's matrix changed,
    except while the view keeps moving and the last exact sort took longer than ``slow_seconds``: then
    the order is the 16-bit :func:`coarse_draw_order` of the new view, and ``stale`` asks the caller to
    redraw once the view rests, when :meth:`rest` makes the next update sort exactly.
    """

    def __init__(self, slow_seconds: float = 0.03, clock=time.perf_counter):
        self.slow_seconds, self.clock = slow_seconds, clock
        self.key = None  # (view, matrices) the current order was sorted for
        self.last_view = None
        self.seconds = 0.0
        self.stale = False

    def rest(self) -> None:
        """The view has stopped: the next :meth:`update` sorts if anything changed."""
        self.last_view = None

    def update(self, objects: list, world_to_camera) -> np.ndarray | None:
        """A new back-to-front order [N] (coarse while ``stale``), or None to keep drawing the last one."""
        w2c = np.asarray(world_to_camera, np.float64).reshape(4, 4)
        view = w2c.tobytes()
        key = (view, tuple(np.asarray(o.matrix, np.float64).tobytes() for o in objects),
               tuple(len(o) for o in objects))
        moving = self.last_view is not None and self.last_view != view
        self.last_view = view
        if key == self.key:
            self.stale = False
            return None
        if moving and self.seconds > self.slow_seconds:
            self.stale, self.key = True, None  # the exact order is still to come
            return coarse_draw_order(view_depths(objects, w2c))
        start = self.clock()
        order = draw_order(view_depths(objects, w2c))
        self.seconds, self.key, self.stale = self.clock() - start, key, False
        return order

    def reset(self) -> None:
        """The splats changed (count or content): the next update sorts."""
        self.key = None
