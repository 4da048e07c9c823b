from .toy2d import TOY2D_DATASETS, check_toy2d_name, sample_toy2d, toy2d_normalisation

__all__ = ["TOY2D_DATASETS", "check_toy2d_name", "sample_toy2d", "toy2d_normalisation"]
