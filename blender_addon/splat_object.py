"""Splat objects in Blender: POINTCLOUD objects whose attributes follow :mod:`.splat_attributes`.

Creation goes mesh -> ``object.convert`` (Blender 5.0's Python cannot size a point cloud directly;
the conversion takes milliseconds for 1M points), then bulk ``foreach_set`` per attribute. Anything
made before a failure is removed again, so a failed import leaves the scene unchanged.
"""

from __future__ import annotations

import numpy as np

import bpy

from . import splat_attributes as sa
from .gs_core_modules import ply

DISPLAY_MATERIAL = "GS Splat Colour"
NATIVE_ATTRIBUTES = (sa.BASE, sa.SCALE, sa.ROTATION)


def is_splat_object(obj) -> bool:
    """A point cloud with the native splat attributes (made by this add-on or by Blender 5.3+)."""
    return (obj is not None and obj.type == 'POINTCLOUD'
            and all(name in obj.data.attributes for name in NATIVE_ATTRIBUTES))


def ensure_object_mode(context) -> None:
    if context.mode != 'OBJECT' and context.active_object is not None:
        bpy.ops.object.mode_set(mode='OBJECT')


def select_only(context, objects, active) -> None:
    for obj in context.view_layer.objects.selected:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    context.view_layer.objects.active = active


def create_splat_object(context, name: str, data: sa.SplatData):
    """Link a new splat object holding ``data`` into the active collection and return it."""
    created = []  # ID data-blocks to remove again if anything fails
    try:
        mesh = bpy.data.meshes.new(name)
        created.append(mesh)
        mesh.vertices.add(len(data))
        obj = bpy.data.objects.new(name, mesh)
        created.append(obj)
        context.collection.objects.link(obj)
        with context.temp_override(active_object=obj, object=obj, selected_objects=[obj],
                                   selected_editable_objects=[obj]):
            bpy.ops.object.convert(target='POINTCLOUD')
        pointcloud = obj.data
        created.append(pointcloud)
        created.remove(mesh)
        bpy.data.meshes.remove(mesh)
        for leftover in [a.name for a in pointcloud.attributes if a.name.startswith(".select")]:
            pointcloud.attributes.remove(pointcloud.attributes[leftover])
        write_attributes(pointcloud, data.attributes)
        obj[sa.SCHEMA_PROPERTY] = sa.schema_to_json(data.schema)
        obj.display_type = display_type(context.scene)
        pointcloud.color_attributes.active = pointcloud.attributes[sa.COLOR]
        material_existed = DISPLAY_MATERIAL in bpy.data.materials
        material = display_material()
        if not material_existed:
            created.append(material)
        pointcloud.materials.append(material)
        return obj
    except BaseException:
        for block in reversed(created):
            _remove_id(block)
        raise


DRAW_PROPERTY = "gs_draw_gaussians"  # Scene BoolProperty, registered by splat_draw


def display_type(scene) -> str:
    """'BOUNDS' while the viewport draws splats as Gaussians (splat_draw: the point spheres would hide
    them), else 'TEXTURED' (the spheres with the splat colours)."""
    return 'BOUNDS' if getattr(scene, DRAW_PROPERTY, False) else 'TEXTURED'


def remove_splat_object(obj) -> None:
    """Remove a splat object with its point cloud, and the display material once nothing uses it."""
    pointcloud = obj.data
    bpy.data.objects.remove(obj)
    if pointcloud.users == 0:
        bpy.data.pointclouds.remove(pointcloud)
    material = bpy.data.materials.get(DISPLAY_MATERIAL)
    if material is not None and material.users == 0:
        bpy.data.materials.remove(material)


def _remove_id(block) -> None:
    collection = {bpy.types.Object: bpy.data.objects, bpy.types.Mesh: bpy.data.meshes,
                  bpy.types.PointCloud: bpy.data.pointclouds, bpy.types.Material: bpy.data.materials}[type(block)]
    try:
        collection.remove(block)
    except ReferenceError:  # already gone
        pass


def write_attributes(pointcloud, attributes: dict[str, sa.Attribute]) -> None:
    """Create (or overwrite) point attributes from flat-able numpy values."""
    for name, (data_type, values) in attributes.items():
        components, key, dtype = sa.LAYOUT[data_type]
        attribute = pointcloud.attributes.get(name)
        if attribute is not None and (attribute.data_type != data_type or attribute.domain != 'POINT'):
            pointcloud.attributes.remove(attribute)
            attribute = None
        if attribute is None:
            attribute = pointcloud.attributes.new(name, data_type, 'POINT')
        attribute.data.foreach_set(key, np.ascontiguousarray(values, dtype=dtype).reshape(-1))


def read_attributes(pointcloud, names) -> dict[str, np.ndarray]:
    """Point attributes ``names`` (those present) as arrays [N] or [N, components]."""
    n = len(pointcloud.points)
    out = {}
    for name in names:
        attribute = pointcloud.attributes.get(name)
        if attribute is None or attribute.domain != 'POINT' or attribute.data_type not in sa.LAYOUT:
            continue
        components, key, dtype = sa.LAYOUT[attribute.data_type]
        values = np.empty(n * components, dtype=dtype)
        attribute.data.foreach_get(key, values)
        out[name] = values.reshape(n, components) if components > 1 else values
    return out


def export_attribute_names(pointcloud) -> list[str]:
    """The attributes a PLY export reads: native splat attributes and raw ``ply:`` columns."""
    names = [a.name for a in pointcloud.attributes]
    wanted = [sa.POSITION, *NATIVE_ATTRIBUTES]
    wanted += [sa.sh_attribute(k) for k in range(sa.count_sh_attributes(names))]
    wanted += [n for n in names if n.startswith(sa.RAW_PREFIX)]
    return wanted


def schema_of(obj) -> dict:
    return sa.schema_from_json(obj.get(sa.SCHEMA_PROPERTY))


def display_material():
    """A shared material showing ``gs:color`` (emission: splat colours are radiance, not albedo)."""
    material = bpy.data.materials.get(DISPLAY_MATERIAL)
    if material is not None:
        return material
    material = bpy.data.materials.new(DISPLAY_MATERIAL)
    try:
        if material.node_tree is None:  # 4.5: no node tree until use_nodes; 5.0: always one
            material.use_nodes = True
        nodes, links = material.node_tree.nodes, material.node_tree.links
        nodes.clear()
        attribute = nodes.new('ShaderNodeAttribute')
        attribute.attribute_type = 'GEOMETRY'
        attribute.attribute_name = sa.COLOR
        emission = nodes.new('ShaderNodeEmission')
        output = nodes.new('ShaderNodeOutputMaterial')
        links.new(attribute.outputs['Color'], emission.inputs['Color'])
        links.new(emission.outputs['Emission'], output.inputs['Surface'])
    except BaseException:  # no half-built material left behind
        bpy.data.materials.remove(material)
        raise
    return material


def object_table(obj) -> ply.PlyTable:
    """The object's splats as a PLY table in object space (raw bits where unedited)."""
    pointcloud = obj.data
    attributes = read_attributes(pointcloud, export_attribute_names(pointcloud))
    return sa.splat_data_to_table(attributes, schema_of(obj), obj.name)


def matrix_of(obj) -> np.ndarray:  # [4, 4] float64
    return np.array(obj.matrix_world, dtype=np.float64)


def replace_splats(obj, table) -> None:
    """Rewrite the object's splat attributes from ``table`` (same rows), keeping the source ids
    (``gs:source``, ``gs:index``) and ``gs:hidden``; raw ``ply:`` attributes are rebuilt for the new
    values."""
    data = sa.table_to_splat_data(table, obj.name)
    pointcloud = obj.data
    for name in [a.name for a in pointcloud.attributes if a.name.startswith(sa.RAW_PREFIX)]:
        pointcloud.attributes.remove(pointcloud.attributes[name])
    write_attributes(pointcloud, {k: v for k, v in data.attributes.items() if k not in (sa.INDEX, sa.SOURCE)})
