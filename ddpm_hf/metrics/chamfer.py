"""Chamfer distance between two point clouds, the course's score for the 2D lab."""

import numpy as np
from scipy.spatial import cKDTree


def chamfer_distance(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """
    Sum over both directions of the squared distance from each point to its nearest neighbour in the other set:
    sum_a min_b |a - b|^2 + sum_b min_a |a - b|^2 (the course's definition; nearest neighbours by a KD-tree).

    Args:
        points_a (`np.ndarray` of shape `(N, D)`): First point cloud.
        points_b (`np.ndarray` of shape `(M, D)`): Second point cloud, same D.

    Returns:
        `float`: The Chamfer distance; 0 only when both sets hold the same points.
    """
    points_a = np.asarray(points_a, dtype=np.float64)
    points_b = np.asarray(points_b, dtype=np.float64)
    if points_a.ndim != 2 or points_b.ndim != 2 or points_a.shape[1] != points_b.shape[1]:
        raise ValueError(f"Need two (N, D) arrays with the same D, got shapes {points_a.shape} and {points_b.shape}.")
    if len(points_a) == 0 or len(points_b) == 0:
        raise ValueError(f"Both point clouds need at least one point, got {len(points_a)} and {len(points_b)}.")
    if not (np.isfinite(points_a).all() and np.isfinite(points_b).all()):
        raise ValueError("Point clouds hold NaN or infinite values; the Chamfer distance is undefined.")
    distances_a_to_b, _ = cKDTree(points_b).query(points_a)
    distances_b_to_a, _ = cKDTree(points_a).query(points_b)
    return float(np.sum(distances_a_to_b**2) + np.sum(distances_b_to_a**2))
