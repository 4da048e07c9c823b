from .mlp_2d import MLP2DModel, MLP2DOutput

__all__ = ["MLP2DModel", "MLP2DOutput"]
