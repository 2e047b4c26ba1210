"""File formats. ``ply`` is numpy-only so the Blender add-on can vendor it."""
