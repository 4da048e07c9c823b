from .accuracy import multi_label_accuracy, multi_label_accuracy_by_count, single_label_accuracy
from .chamfer import chamfer_distance
from .fid import extract_features, frechet_distance, inception_feature_network, inception_score, kernel_distance
from .reference_cache import cached_tensors, file_fingerprint

__all__ = [
    "cached_tensors",
    "chamfer_distance",
    "extract_features",
    "file_fingerprint",
    "frechet_distance",
    "inception_feature_network",
    "inception_score",
    "kernel_distance",
    "multi_label_accuracy",
    "multi_label_accuracy_by_count",
    "single_label_accuracy",
]
