"""IQGS: instance-query segmentation of Gaussian-splat scenes (Gao et al., AAAI 2026).

* :mod:`.model` — per-Gaussian instance attributes, the projection ``P`` and the query decoder (Eq. 2-7);
* :mod:`.losses` — focal and dice mask losses and their pairwise costs, the 3D kNN regulariser and
  the 2D-3D consistency loss (Eq. 9, 11-14);
* :mod:`.matching` — ID matching (Eq. 8) and Hungarian matching (Eq. 9-10, "IQGS-H");
* :mod:`.train` — the training loop on sampled pixels (Eq. 15) and inference (per-Gaussian labels,
  masks in any view).

:mod:`.method` composes them with the Trace3D core's consistent maps.
"""

from .losses import consistency_loss, dice_cost, dice_loss, focal_cost, focal_loss, knn_neighbours, knn_regulariser
from .matching import hungarian_matching, id_matching, query_ids_by_area
from .model import IQGSHead, IQGSModel, ModelConfig
from .train import TrainConfig, TrainResult, TrainView, decode, gaussian_labels, train_iqgs, view_labels
from .method import (IQGSConfig, IQGSResult, bench_config, prepare_config, prepare_iqgs, run, segment,
                     segment_hungarian, target_maps)

__all__ = ["IQGSConfig", "IQGSHead", "IQGSModel", "IQGSResult", "ModelConfig", "TrainConfig", "TrainResult",
           "TrainView", "bench_config", "consistency_loss", "decode", "dice_cost", "dice_loss", "focal_cost",
           "focal_loss", "gaussian_labels", "hungarian_matching", "id_matching", "knn_neighbours",
           "knn_regulariser", "prepare_config", "prepare_iqgs", "query_ids_by_area", "run", "segment",
           "segment_hungarian", "target_maps", "train_iqgs", "view_labels"]
