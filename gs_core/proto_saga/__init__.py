"""Proto-SaGa (prototype-based segmentation with semantic-aware Gaussian grouping): view-specific
cosine classifiers (:mod:`.classifiers`, Sec. 3.1), semantic-aware association on Gaga's memory bank
(:mod:`.association`, Sec. 3.2) and prototype inference (:mod:`.prototypes`, Sec. 3.3). The method
that composes them is :mod:`gs_core.methods.proto_saga`."""

from .association import AssociationConfig, associate, probable_gaussians, semantic_sets
from .classifiers import ClassifierConfig, TrainedClassifiers, gaussian_probabilities, train_classifiers
from .prototypes import Prototypes, classify, cosine_logits, kmeans_classes, label_view, prototypes, view_prototypes

__all__ = ["AssociationConfig", "associate", "probable_gaussians", "semantic_sets",
           "ClassifierConfig", "TrainedClassifiers", "cosine_logits", "gaussian_probabilities", "train_classifiers",
           "Prototypes", "classify", "kmeans_classes", "label_view", "prototypes", "view_prototypes"]
