"""The noise network of the 2D toy DDPM: an MLP conditioned on a sinusoidal time embedding."""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn


@dataclass
class MLP2DOutput(BaseOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, sample_dim)`): The network output (noise, x0, v or mean).
    """

    sample: torch.Tensor


class MLP2DModel(ModelMixin, ConfigMixin):
    """
    MLP noise network for low-dimensional data (2D point clouds by default).

    The timestep goes through the Transformer sinusoidal embedding (as in Ho et al. 2020) and a small MLP; every
    hidden layer is modulated by it, h -> act(linear(h) * (1 + scale(t)) + shift(t)) (FiLM). On the swiss roll this
    scale-and-shift conditioning samples a much thinner roll than adding the embedding (docs/TOY2D.md).

    Args:
        sample_dim (`int`, defaults to 2): Dimension of a data point.
        hidden_dims (`tuple[int, ...]`, defaults to `(128, 128, 128)`): Width of each hidden layer.
        time_embedding_dim (`int`, defaults to 128): Size of the sinusoidal timestep embedding.
        residual_output (`bool`, defaults to `False`): Return `sample + output_scale * mlp(sample, t)` instead of
            `output_scale * mlp(sample, t)`. Posterior-mean prediction needs it: its target is x_t plus a correction
            of order beta_t, and an MLP that has to rebuild x_t itself leaves a gain error that compounds over the
            sampling steps (docs/TOY2D.md).
        output_scale (`float`, defaults to 1.0): Constant factor on the MLP's output. A small one (about beta_t)
            brings a posterior-mean correction to the MLP's natural O(1) scale, so that the optimiser's step-to-step
            jitter on the output shrinks with it.
    """

    @register_to_config
    def __init__(
        self,
        sample_dim: int = 2,
        hidden_dims: tuple[int, ...] = (128, 128, 128),
        time_embedding_dim: int = 128,
        residual_output: bool = False,
        output_scale: float = 1.0,
    ):
        super().__init__()
        hidden_dims = list(hidden_dims)
        if sample_dim < 1 or not hidden_dims or min(hidden_dims) < 1:
            raise ValueError(
                f"sample_dim and every hidden dim must be >= 1 with at least one hidden layer, got "
                f"sample_dim={sample_dim!r}, hidden_dims={hidden_dims!r}."
            )
        if not output_scale > 0:
            raise ValueError(f"output_scale must be > 0, got {output_scale!r}.")
        if time_embedding_dim < 2 or time_embedding_dim % 2:
            raise ValueError(f"time_embedding_dim must be an even integer >= 2, got {time_embedding_dim!r}.")
        self.time_mlp = nn.Sequential(
            nn.Linear(time_embedding_dim, time_embedding_dim),
            nn.SiLU(),
            nn.Linear(time_embedding_dim, time_embedding_dim),
        )
        widths = [sample_dim] + hidden_dims
        self.layers = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.time_projections = nn.ModuleList(nn.Linear(time_embedding_dim, 2 * width) for width in hidden_dims)
        self.activation = nn.SiLU()
        self.out = nn.Linear(hidden_dims[-1], sample_dim)

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor | int, return_dict: bool = True
    ) -> MLP2DOutput | tuple:
        """
        Args:
            sample (`torch.Tensor` of shape `(batch_size, sample_dim)`): Noisy points x_t.
            timestep (`torch.Tensor` or `int`): Timestep t, one for all points or one per point.
            return_dict (`bool`, defaults to `True`): Return an [`MLP2DOutput`] instead of a tuple.
        """
        timesteps = torch.as_tensor(timestep, device=sample.device).flatten()
        timesteps = timesteps.expand(sample.shape[0]) if timesteps.numel() == 1 else timesteps
        time_embedding = get_timestep_embedding(timesteps, self.config.time_embedding_dim, flip_sin_to_cos=True)
        time_embedding = self.time_mlp(time_embedding.to(sample.dtype))

        hidden = sample
        for layer, time_projection in zip(self.layers, self.time_projections):
            scale, shift = time_projection(time_embedding).chunk(2, dim=-1)
            hidden = self.activation(layer(hidden) * (1 + scale) + shift)
        output = self.out(hidden) * self.config.output_scale
        if self.config.residual_output:
            output = sample + output
        if not return_dict:
            return (output,)
        return MLP2DOutput(sample=output)
