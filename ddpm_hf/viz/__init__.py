from .images import denoising_grid, image_grid, save_denoising_gif, save_grid, square_grid, tensor_to_pil
from .loss_curve import save_loss_curve
from .points_2d import save_forward_process_figure, save_samples_figure, save_trajectory_gif
from .run_figures import grid_shape, sample_grid, save_epoch_grid, save_run_figures
from .sweep_figures import (
    first_row_of_grid,
    gif_strip,
    save_image_matrix,
    save_sweep_figures,
    save_sweep_loss_curves,
    save_trajectory_strips,
)

__all__ = [
    "denoising_grid",
    "first_row_of_grid",
    "gif_strip",
    "grid_shape",
    "sample_grid",
    "save_epoch_grid",
    "save_run_figures",
    "image_grid",
    "save_denoising_gif",
    "save_forward_process_figure",
    "save_grid",
    "save_image_matrix",
    "save_loss_curve",
    "save_samples_figure",
    "save_sweep_figures",
    "save_sweep_loss_curves",
    "save_trajectory_gif",
    "save_trajectory_strips",
    "square_grid",
    "tensor_to_pil",
]
