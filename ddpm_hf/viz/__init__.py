from .loss_curve import save_loss_curve
from .points_2d import save_forward_process_figure, save_samples_figure, save_trajectory_gif

__all__ = ["save_forward_process_figure", "save_loss_curve", "save_samples_figure", "save_trajectory_gif"]
