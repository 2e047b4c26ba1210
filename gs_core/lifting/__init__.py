"""Lifting 2D signals onto Gaussians: closed form (linear-inverse paper), contrastive features
(Trace3D Sec. 3.5), post-lifting aggregation and automatic thresholds. All compositions of the
engine's ``render`` and ``trace``."""

from .aggregation import (AggregationConfig, AggregationResult, aggregate, cluster_features, filter_view,
                          view_agreement)
from .contrastive import ContrastiveConfig, ContrastiveResult, contrastive_loss, query_scores, train_contrastive
from .thresholds import Threshold, ThresholdConfig, auto_threshold, otsu
from .closed_form import (FeatureLiftConfig, FeatureSums, LiftedFeatures, feature_view_sums, lift_features,
                          LabelLiftConfig, LabelSums, LiftedLabels, label_view_sums, labels_from_sums,
                          lift_labels, reduce_label_sums, seen_in_view)

__all__ = ["AggregationConfig", "AggregationResult", "aggregate", "cluster_features", "filter_view", "view_agreement",
           "ContrastiveConfig", "ContrastiveResult", "contrastive_loss", "query_scores", "train_contrastive",
           "FeatureLiftConfig", "FeatureSums", "LiftedFeatures", "feature_view_sums", "lift_features",
           "LabelLiftConfig", "LabelSums", "LiftedLabels", "label_view_sums", "labels_from_sums", "lift_labels",
           "reduce_label_sums", "seen_in_view", "Threshold", "ThresholdConfig", "auto_threshold", "otsu"]
