"""Splats in the 3D viewport: every visible splat object drawn as 3D Gaussians by a GPU shader, in one
back-to-front pass over all objects together. A thin layer over :mod:`.splat_display` (bpy-free, tested):

1. per splat, static until its object's splats change: the textures of :func:`splat_display.pack_splats`
   (object-space mean and covariance, opacity, SH; the selection tinted, or instance colours while
   *Preview instances* is on), and per object its matrix (:func:`splat_display.object_rows`), so moving
   an object uploads 96 bytes;
2. per view: the depth order on the CPU (:class:`splat_display.SortState`: exact once the view or an
   object has moved; while the view keeps moving and the exact sort is slow, a 16-bit radix order, and
   the exact one when the view rests), uploaded as a texture;
3. the splat pass into an offscreen float buffer: the vertex shader is
   :func:`splat_display.project_packed` (EWA ellipse, SH colour in the object's frame, gsplat's
   conventions), the fragment shader :func:`gs_core.splat_view.composite` (alpha, 1/255 cut,
   premultiplied back-to-front blending), with fragments behind Blender's depth buffer dropped, so a mesh
   in front hides splats;
4. the buffer over the viewport (premultiplied, colour to scene-linear), as the final render composites.

The picture of step 3 is gs_core's ``render`` (see :mod:`gs_core.splat_view`). No backend and no Prepare
are involved. Orthographic views are not drawn (the pinhole model is perspective). Background mode draws no
viewport (:func:`register_handler` adds no draw handler); the tests and ``gs-core bench splats-gl`` run
:func:`draw_splats` headless after :mod:`.gpu_background` started Blender's GPU backend.
"""

from __future__ import annotations

import numpy as np

import bpy

from . import splat_display, splat_object, view_camera
from . import splat_attributes as sa
from .gs_core_modules import splat_view

PREVIEW = "gs:preview"  # segmentation.PREVIEW: instance colours written by the preview
SH_DEGREE = 3
SLOW_SORT_S = 0.03  # a sort slower than this is skipped while the view keeps moving
RESORT_DELAY_S = 0.25

# ---- the shaders: interfaces as data (one definition for Blender's create-info and the GLSL check) ----

SPLAT_CONSTANTS = (("MAT4", "worldToCamera"), ("VEC4", "intrinsics"), ("VEC4", "viewSize"),
                   ("VEC4", "cameraPosition"), ("IVEC4", "splatLayout"))
# viewSize: width, height, P22, P23 of Blender's window matrix (depth), cameraPosition.w: near clip
# splatLayout: texels per splat, SH coefficients kept, texture width, 0
SPLAT_SAMPLERS = (("FLOAT_2D", "splats"), ("FLOAT_2D", "order"), ("FLOAT_2D", "objects"),
                  ("FLOAT_2D", "sceneDepth"))
SPLAT_VARYINGS = (("no_perspective", "VEC2", "delta"), ("flat", "VEC4", "colorOpacity"),
                  ("flat", "VEC4", "conicDepth"))

SPLAT_VERTEX = """
ivec2 texel(int i) { return ivec2(i % splatLayout.z, i / splatLayout.z); }

vec3 shColor(int base, int count, vec3 d) {
  /* gs_core.sh.basis_terms; coefficients channel-interleaved, 4 floats per texel */
  float basis[16];
  float x = d.x, y = d.y, z = d.z, xx = x * x, yy = y * y, zz = z * z;
  basis[0] = 0.28209479177387814;
  basis[1] = -0.4886025119029199 * y; basis[2] = 0.4886025119029199 * z; basis[3] = -0.4886025119029199 * x;
  basis[4] = 1.0925484305920792 * x * y; basis[5] = -1.0925484305920792 * y * z;
  basis[6] = 0.31539156525252005 * (2.0 * zz - xx - yy); basis[7] = -1.0925484305920792 * x * z;
  basis[8] = 0.5462742152960396 * (xx - yy);
  basis[9] = -0.5900435899266435 * y * (3.0 * xx - yy); basis[10] = 2.890611442640554 * x * y * z;
  basis[11] = -0.4570457994644658 * y * (4.0 * zz - xx - yy);
  basis[12] = 0.3731763325901154 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy);
  basis[13] = -0.4570457994644658 * x * (4.0 * zz - xx - yy); basis[14] = 1.445305721320277 * z * (xx - yy);
  basis[15] = -0.5900435899266435 * x * (xx - 3.0 * yy);
  vec3 color = vec3(0.0);
  for (int k = 0; k < count; k++) {
    int f = 3 * k;
    vec4 t0 = texelFetch(splats, texel(base + f / 4), 0);
    vec4 t1 = texelFetch(splats, texel(base + (f + 1) / 4), 0);
    vec4 t2 = texelFetch(splats, texel(base + (f + 2) / 4), 0);
    vec3 c = vec3(t0[f % 4], t1[(f + 1) % 4], t2[(f + 2) % 4]);
    color += basis[k] * c;
  }
  return max(color + 0.5, vec3(0.0));
}

void main() {
  int g = int(texelFetch(order, texel(gl_InstanceID), 0).r);
  int b = g * splatLayout.x;
  vec4 t0 = texelFetch(splats, texel(b), 0);
  vec4 t1 = texelFetch(splats, texel(b + 1), 0);
  vec4 t2 = texelFetch(splats, texel(b + 2), 0);
  int o = int(t0.w);
  vec4 r0 = texelFetch(objects, ivec2(0, o), 0);
  vec4 r1 = texelFetch(objects, ivec2(1, o), 0);
  vec4 r2 = texelFetch(objects, ivec2(2, o), 0);
  mat3 A = transpose(mat3(r0.xyz, r1.xyz, r2.xyz));
  mat3 Ainv = transpose(mat3(texelFetch(objects, ivec2(3, o), 0).xyz, texelFetch(objects, ivec2(4, o), 0).xyz,
                             texelFetch(objects, ivec2(5, o), 0).xyz));
  vec3 t = vec3(r0.w, r1.w, r2.w);
  vec3 mean = A * t0.xyz + t;
  mat3 S = mat3(t1.x, t1.y, t1.z, t1.y, t1.w, t2.x, t1.z, t2.x, t2.y);
  mat3 R = mat3(worldToCamera);
  vec3 tc = R * mean + worldToCamera[3].xyz;
  mat3 cov = R * (A * S * transpose(A)) * transpose(R);
  float fx = intrinsics.x, fy = intrinsics.y, cx = intrinsics.z, cy = intrinsics.w;
  float W = viewSize.x, H = viewSize.y, tz = tc.z;
  float limXPos = (W - cx) / fx + 0.15 * W / fx, limXNeg = cx / fx + 0.15 * W / fx;
  float limYPos = (H - cy) / fy + 0.15 * H / fy, limYNeg = cy / fy + 0.15 * H / fy;
  float txc = tz * clamp(tc.x / tz, -limXNeg, limXPos);
  float tyc = tz * clamp(tc.y / tz, -limYNeg, limYPos);
  vec3 j0 = vec3(fx / tz, 0.0, -fx * txc / (tz * tz));
  vec3 j1 = vec3(0.0, fy / tz, -fy * tyc / (tz * tz));
  float a = dot(j0, cov * j0) + 0.3;
  float bc = dot(j0, cov * j1);
  float c = dot(j1, cov * j1) + 0.3;
  float det = a * c - bc * bc;
  vec2 m2 = vec2(fx * tc.x / tz + cx, fy * tc.y / tz + cy);
  vec2 radius = ceil(3.33 * sqrt(vec2(a, c)));
  bool inside = m2.x + radius.x > 0.0 && m2.x - radius.x < W && m2.y + radius.y > 0.0 && m2.y - radius.y < H;
  if (!(det > 0.0 && tz > cameraPosition.w && tz < 1e10 && inside)) {
    gl_Position = vec4(0.0, 0.0, 2.0, 1.0); /* culled: every corner at one point outside the clip volume */
    delta = vec2(0.0); colorOpacity = vec4(0.0); conicDepth = vec4(0.0);
    return;
  }
  det = max(det, 1e-10);
  vec3 eye = Ainv * (cameraPosition.xyz - t);
  colorOpacity = vec4(shColor(b + 3, splatLayout.y, normalize(t0.xyz - eye)), t2.z);
  float zNdc = (-viewSize.z * tz + viewSize.w) / tz;
  conicDepth = vec4(c / det, -bc / det, a / det, 0.5 * zNdc + 0.5);
  delta = corner * radius;
  vec2 pixel = m2 + delta;
  gl_Position = vec4(2.0 * pixel.x / W - 1.0, 1.0 - 2.0 * pixel.y / H, 0.0, 1.0);
}
"""

SPLAT_FRAGMENT = """
void main() {
  vec2 d = delta; /* pixel centre - mean, in y-down pixels (interpolated over the quad) */
  float s = 0.5 * (conicDepth.x * d.x * d.x + conicDepth.z * d.y * d.y) + conicDepth.y * d.x * d.y;
  float alpha = min(0.999, colorOpacity.a * exp(-s));
  if (s < 0.0 || alpha < 1.0 / 255.0) {
    discard;
  }
  if (conicDepth.w > texelFetch(sceneDepth, ivec2(gl_FragCoord.xy), 0).r) {
    discard; /* behind what Blender drew there */
  }
  fragColor = vec4(colorOpacity.rgb * alpha, alpha);
}
"""

OVER_SAMPLERS = (("FLOAT_2D", "image"),)
OVER_VERTEX = """
void main() { gl_Position = vec4(pos, 0.0, 1.0); }
"""
OVER_FRAGMENT = """
void main() {
  /* premultiplied display colour -> scene-linear, as the final render's layer (splat_render.fill_images) */
  vec4 c = texelFetch(image, ivec2(gl_FragCoord.xy), 0);
  vec3 lo = c.rgb / 12.92;
  vec3 hi = pow((max(c.rgb, vec3(0.04045)) + 0.055) / 1.055, vec3(2.4));
  fragColor = vec4(mix(hi, lo, vec3(lessThanEqual(c.rgb, vec3(0.04045)))), c.a);
}
"""


def glsl_declarations(constants, samplers, varyings, stage: str, vertex_in) -> str:
    """The declarations Blender's create-info adds around a stage's source, as plain GLSL 4.3 (for the
    compile check in the tests; Blender generates its own)."""
    glsl = {"FLOAT": "float", "VEC2": "vec2", "VEC3": "vec3", "VEC4": "vec4", "MAT4": "mat4", "IVEC4": "ivec4",
            "INT": "int", "FLOAT_2D": "sampler2D"}
    lines = [f"uniform {glsl[t]} {n};" for t, n in constants]
    lines += [f"uniform {glsl[t]} {n};" for t, n in samplers]
    qualifier = {"flat": "flat", "no_perspective": "noperspective", "smooth": "smooth"}
    direction = "out" if stage == "vertex" else "in"
    lines += [f"{qualifier[q]} {direction} {glsl[t]} {n};" for q, t, n in varyings]
    if stage == "vertex":
        lines += [f"in {glsl[t]} {n};" for t, n in vertex_in]
    else:
        lines.append("out vec4 fragColor;")
    return "#version 430\n" + "\n".join(lines) + "\n"


_shaders: dict = {}


def _create_shader(name, constants, samplers, varyings, vertex_in, vertex, fragment):
    import gpu

    interface = gpu.types.GPUStageInterfaceInfo(f"gs_{name}_interface")
    for qualifier, kind, var in varyings:
        getattr(interface, qualifier)(kind, var)
    info = gpu.types.GPUShaderCreateInfo()
    for kind, const in constants:
        info.push_constant(kind, const)
    for slot, (kind, sampler) in enumerate(samplers):
        info.sampler(slot, kind, sampler)
    for slot, (kind, attr) in enumerate(vertex_in):
        info.vertex_in(slot, kind, attr)
    if varyings:
        info.vertex_out(interface)
    info.fragment_out(0, 'VEC4', "fragColor")
    info.vertex_source(vertex)
    info.fragment_source(fragment)
    return gpu.shader.create_from_info(info)


def shaders():
    if not _shaders:
        from gpu_extras.batch import batch_for_shader

        splat = _create_shader("splat", SPLAT_CONSTANTS, SPLAT_SAMPLERS, SPLAT_VARYINGS, (("VEC2", "corner"),),
                               SPLAT_VERTEX, SPLAT_FRAGMENT)
        over = _create_shader("over", (), OVER_SAMPLERS, (), (("VEC2", "pos"),), OVER_VERTEX, OVER_FRAGMENT)
        quad = ((-1, -1), (1, -1), (1, 1), (-1, -1), (1, 1), (-1, 1))
        _shaders.update(splat=splat, over=over,
                        splat_batch=batch_for_shader(splat, 'TRIS', {"corner": quad}),
                        over_batch=batch_for_shader(over, 'TRIS', {"pos": quad}))
    return _shaders


def bind_shader(shader) -> None:
    """Bind ``shader`` for a pass, for real. Blender's GPU context remembers the bound shader by its
    address and skips the bind when a shader at that address is bound again; freeing a shader does not
    unbind it (only a debug build asserts), so a shader freed while bound (ours on unregister, or anyone
    else's) leaves a stale address, and a new shader allocated there would draw with whatever GL program
    is current: in the over pass, nothing at all, or garbage. Unbinding first makes Blender bind ours."""
    import gpu

    gpu.shader.unbind()
    shader.bind()


def unbind_shader() -> None:
    """After a pass: leave none of our shaders bound, so freeing them (unregister, a reload) cannot leave
    Blender's context a stale address that a shader made later (its own or another add-on's) would hit."""
    import gpu

    gpu.shader.unbind()


# ---- what is drawn -------------------------------------------------------------------------------------

class DrawState:
    """The uploaded textures and the last order, reused while nothing they depend on changed."""

    def __init__(self):
        self.key = None  # (object names, data pointers, counts, preview) of the splat texture
        self.objects: list = []  # splat_view.ObjectSplats, matrices of the last draw
        self.splat_texture = None
        self.sort = splat_display.SortState(SLOW_SORT_S)
        self.order_texture = None
        self.object_texture = None  # the objects' matrices of the last draw
        self.dirty: set = set()  # objects whose splats changed since the upload
        self.offscreen = None  # the float buffer of the splat pass, kept while the region's size is


state = DrawState()


def visible_splat_objects(context) -> list:
    return [o for o in context.view_layer.objects if splat_object.is_splat_object(o) and o.visible_get()]


def _preview_on(context) -> bool:
    settings = getattr(context.scene, "gs_segment", None)
    return bool(settings is not None and settings.preview)


def gather(context, objects) -> list:
    """Each object's splats for display (selection tinted, instance colours while previewing)."""
    preview = _preview_on(context)
    out = []
    for obj in objects:
        names = [a.name for a in obj.data.attributes]
        wanted = splat_display.attribute_names(names) + ([PREVIEW] if preview and PREVIEW in names else [])
        attributes = splat_object.read_attributes(obj.data, wanted)
        splats = splat_display.object_splats(attributes, splat_object.matrix_of(obj), keep_hidden=True)
        keep = ~attributes[sa.HIDDEN] if sa.HIDDEN in attributes else slice(None)
        instance = attributes[PREVIEW][:, :3] if PREVIEW in attributes else None
        splats.sh = splat_display.display_colors(splats, attributes.get(splat_display.SELECTION), instance)
        out.append(splats.subset(keep))
    return out


def _texture(values: np.ndarray, fmt: str):
    import gpu

    width, height = splat_display.texture_shape(len(values))
    data = np.zeros((width * height, values.shape[1] if values.ndim > 1 else 1), np.float32)
    data[:len(values)] = values.reshape(len(values), -1)
    buffer = gpu.types.Buffer('FLOAT', data.size, data.ravel())
    return gpu.types.GPUTexture((width, height), format=fmt, data=buffer)


def _object_texture(objects):
    import gpu

    rows = splat_display.object_rows(objects)  # [O, 6, 4]
    buffer = gpu.types.Buffer('FLOAT', rows.size, rows.ravel())
    return gpu.types.GPUTexture((6, max(1, len(objects))), format='RGBA32F', data=buffer)


def draw(context) -> None:
    """The POST_VIEW handler's work (see the module docstring): the splat pass of the region's view, with
    Blender's depth buffer, then the buffer over the viewport."""
    import gpu

    region, rv3d = context.region, context.region_data
    if rv3d is None or not rv3d.is_perspective:
        return
    objects = visible_splat_objects(context)
    if not objects:
        return
    width, height = region.width, region.height
    view, window = np.array(rv3d.view_matrix, np.float64), np.array(rv3d.window_matrix, np.float64)
    try:
        camera = view_camera.pinhole_camera(view, window, width, height)
    except view_camera.ViewError:
        return
    framebuffer = gpu.state.active_framebuffer_get()
    depth = framebuffer.read_depth(0, 0, width, height)
    depth_texture = gpu.types.GPUTexture((width, height), format='R32F', data=depth)
    near = max(splat_view.NEAR_PLANE, context.space_data.clip_start)  # the engine's, or the view's clip
    offscreen = draw_splats(context, objects, camera, window, near, depth_texture)
    if offscreen is None:
        return
    with framebuffer.bind():  # making the offscreen buffer (first frame, resize) leaves another one active
        draw_over(offscreen.texture_color)


def draw_over(texture) -> None:
    """Step 4: the splat pass's buffer ``texture`` (premultiplied display colour) over the bound
    framebuffer of the same size, as scene-linear."""
    import gpu

    s = shaders()
    gpu.state.blend_set('ALPHA_PREMULT')
    gpu.state.depth_test_set('NONE')
    try:
        bind_shader(s["over"])
        s["over"].uniform_sampler("image", texture)
        s["over_batch"].draw(s["over"])
    finally:
        unbind_shader()
        gpu.state.blend_set('NONE')


def draw_splats(context, objects, camera: dict, window, near: float, depth_texture):
    """The splat pass (steps 1-3 of the module docstring) of the splat objects ``objects`` for ``camera``
    (a protocol camera, ``view_camera.pinhole_camera``), whose Blender window matrix [4, 4] is ``window``,
    into the float offscreen buffer it returns (None when there is nothing to draw). ``depth_texture``
    ([W, H] R32F, Blender's depth: 0 near, 1 far) drops the fragments behind it. The viewport's draw and
    the headless tests (:func:`read_pixels`) both call this."""
    import gpu

    preview = _preview_on(context)
    key = (tuple(o.name for o in objects), tuple(o.data.as_pointer() for o in objects),
           tuple(len(o.data.points) for o in objects), preview)
    if key != state.key or state.dirty & set(key[0]):
        state.objects = gather(context, objects)
        state.splat_texture = _texture(splat_display.pack_splats(state.objects, SH_DEGREE), 'RGBA32F')
        state.key = key
        state.sort.reset()
        state.dirty.clear()
    for splats, obj in zip(state.objects, objects):
        splats.matrix = splat_object.matrix_of(obj)
    total = sum(len(s) for s in state.objects)
    if total == 0:
        return None
    width, height = int(camera["width"]), int(camera["height"])
    window = np.asarray(window, np.float64).reshape(4, 4)
    w2c = np.asarray(camera["world_to_camera"], np.float64).reshape(4, 4)
    order = state.sort.update(state.objects, w2c)
    if order is not None:
        state.order_texture = _texture(order.astype(np.float32), 'R32F')
    if state.sort.stale and not bpy.app.background:
        _resort_later()  # coarse while moving; exact once the view rests
    s = shaders()
    if state.offscreen is None or (state.offscreen.width, state.offscreen.height) != (width, height):
        if state.offscreen is not None:
            state.offscreen.free()
        state.offscreen = gpu.types.GPUOffScreen(width, height, format='RGBA32F')
    offscreen = state.offscreen
    with offscreen.bind():
        fb = gpu.state.active_framebuffer_get()
        fb.clear(color=(0.0, 0.0, 0.0, 0.0))
        gpu.state.depth_test_set('NONE')
        gpu.state.depth_mask_set(False)
        gpu.state.blend_set('ALPHA_PREMULT')
        shader = s["splat"]
        try:
            bind_shader(shader)
            shader.uniform_float("worldToCamera", w2c.T.astype(np.float32).ravel().tolist())
            shader.uniform_float("intrinsics", (camera["fx"], camera["fy"], camera["cx"], camera["cy"]))
            shader.uniform_float("viewSize", (width, height, window[2, 2], window[2, 3]))
            eye = np.linalg.inv(w2c)[:3, 3]
            shader.uniform_float("cameraPosition", (*eye, near))
            shader.uniform_int("splatLayout", (splat_display.texels_per_splat(SH_DEGREE), (SH_DEGREE + 1) ** 2,
                                               splat_display.TEXTURE_WIDTH, 0))
            shader.uniform_sampler("splats", state.splat_texture)
            shader.uniform_sampler("order", state.order_texture)
            # kept in the state: a texture only passed to uniform_sampler is freed before the draw reads it
            state.object_texture = _object_texture(state.objects)
            shader.uniform_sampler("objects", state.object_texture)
            shader.uniform_sampler("sceneDepth", depth_texture)
            s["splat_batch"].draw_instanced(shader, instance_start=0, instance_count=total)
        finally:
            unbind_shader()
            gpu.state.blend_set('NONE')
    return offscreen


def depth_texture(width: int, height: int, depth=None):
    """An R32F texture of Blender depth values [H, W] (rows from the bottom, as GL's), default all far (1)."""
    import gpu

    values = np.ones((height, width), np.float32) if depth is None else np.asarray(depth, np.float32)
    buffer = gpu.types.Buffer('FLOAT', values.size, values.ravel())
    return gpu.types.GPUTexture((width, height), format='R32F', data=buffer)


def read_pixels(offscreen) -> np.ndarray:
    """The splat pass's buffer as [H, W, 4] float32 (premultiplied display RGB, alpha), rows from the top."""
    width, height = offscreen.width, offscreen.height
    with offscreen.bind():
        buffer = gpu_read(width, height)
    return buffer[::-1]


def gpu_read(width: int, height: int, framebuffer=None) -> np.ndarray:
    """The colour of ``framebuffer`` (default: the bound one) as [H, W, 4] float32, rows from the bottom."""
    import gpu

    framebuffer = framebuffer or gpu.state.active_framebuffer_get()
    buffer = framebuffer.read_color(0, 0, width, height, 4, 0, 'FLOAT')
    return np.array(buffer.to_list(), np.float32).reshape(height, width, 4)


def _resort_later() -> None:
    def redraw():
        state.sort.rest()  # the next draw counts as still: it sorts exactly
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == 'VIEW_3D':
                    area.tag_redraw()
        return None

    if not bpy.app.timers.is_registered(redraw):
        bpy.app.timers.register(redraw, first_interval=RESORT_DELAY_S)


def _draw_handler():
    if not getattr(bpy.context.scene, splat_object.DRAW_PROPERTY, False):
        return
    try:
        draw(bpy.context)
        last_error["message"] = ""
    except Exception as exc:  # noqa: BLE001  (a draw callback must not raise every frame)
        message = f"viewport draw failed: {type(exc).__name__}: {exc}; turn off Draw Gaussians"
        if message != last_error["message"]:
            print(f"Gaussian splats: {message}")
        last_error["message"] = message


@bpy.app.handlers.persistent
def on_depsgraph_update(scene, depsgraph):
    """Objects whose splats changed are re-uploaded on the next draw."""
    for update in depsgraph.updates:
        owner = getattr(update.id, "original", update.id)
        if update.is_updated_geometry and isinstance(owner, bpy.types.Object):
            state.dirty.add(owner.name)
        elif isinstance(owner, bpy.types.PointCloud):
            state.dirty.update(o.name for o in bpy.data.objects if o.data == owner)


_handle = None
last_error = {"message": ""}


def _draw_changed(scene, context):
    for obj in scene.objects:
        if splat_object.is_splat_object(obj):
            obj.display_type = splat_object.display_type(scene)


def register_handler() -> None:
    global _handle
    bpy.types.Scene.gs_draw_gaussians = bpy.props.BoolProperty(
        name="Draw Gaussians", default=True, update=_draw_changed,
        description="Draw splat objects as 3D Gaussians in the viewport (off: coloured points)")
    if on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post:  # also headless (the GL tests)
        bpy.app.handlers.depsgraph_update_post.append(on_depsgraph_update)
    if bpy.app.background or _handle is not None:
        return
    _handle = bpy.types.SpaceView3D.draw_handler_add(_draw_handler, (), 'WINDOW', 'POST_VIEW')


def unregister_handler() -> None:
    global _handle
    if _handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_handle, 'WINDOW')
        _handle = None
    while on_depsgraph_update in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(on_depsgraph_update)
    if hasattr(bpy.types.Scene, splat_object.DRAW_PROPERTY):
        del bpy.types.Scene.gs_draw_gaussians
    if _shaders:
        unbind_shader()  # the passes leave none bound; a shader freed while bound leaves Blender a stale one
    _shaders.clear()
    if state.offscreen is not None:
        state.offscreen.free()
    state.__init__()
