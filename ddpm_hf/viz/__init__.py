from .images import denoising_grid, image_grid, save_denoising_gif, save_grid, square_grid, tensor_to_pil
from .loss_curve import save_loss_curve
from .points_2d import save_forward_process_figure, save_samples_figure, save_trajectory_gif
from .run_figures import grid_shape, sample_grid, save_epoch_grid, save_run_figures

__all__ = [
    "denoising_grid",
    "grid_shape",
    "sample_grid",
    "save_epoch_grid",
    "save_run_figures",
    "image_grid",
    "save_denoising_gif",
    "save_forward_process_figure",
    "save_grid",
    "save_loss_curve",
    "save_samples_figure",
    "save_trajectory_gif",
    "square_grid",
    "tensor_to_pil",
]
