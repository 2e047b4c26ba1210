"""Proto-SaGa (prototype-based segmentation with semantic-aware Gaussian grouping): view-specific
cosine classifiers (:mod:`.classifiers`, Sec. 3.1), semantic-aware association on Gaga's memory bank
(:mod:`.association`, Sec. 3.2) and prototype inference (:mod:`.prototypes`, Sec. 3.3). The method
that composes them is :mod:`.method`."""

from .association import AssociationConfig, associate, probable_gaussians, semantic_sets
from .classifiers import ClassifierConfig, TrainedClassifiers, gaussian_probabilities, train_classifiers
from .prototypes import Prototypes, classify, cosine_logits, kmeans_classes, label_view, prototypes, view_prototypes
from .method import (INFERENCE, ProtoSagaConfig, ProtoSagaResult, prepare_config, prepare_proto_saga, run,
                     segment, segment_classifier, segment_depth, segment_kmeans, segment_probability, train,
                     training_views, view_regions)

__all__ = ["AssociationConfig", "ClassifierConfig", "INFERENCE", "ProtoSagaConfig", "ProtoSagaResult",
           "Prototypes", "TrainedClassifiers", "associate", "classify", "cosine_logits",
           "gaussian_probabilities", "kmeans_classes", "label_view", "prepare_config", "prepare_proto_saga",
           "probable_gaussians", "prototypes", "run", "segment", "segment_classifier", "segment_depth",
           "segment_kmeans", "segment_probability", "semantic_sets", "train", "train_classifiers",
           "training_views", "view_prototypes", "view_regions"]
