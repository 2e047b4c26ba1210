"""``gs-core demo``: the main job on the built-in sample, in this process (:mod:`.job`) or in Blender
through the add-on (:mod:`.blender`), with the click a user would make (:mod:`.click`)."""

from .job import add_arguments, run

__all__ = ["add_arguments", "run"]
