"""What the multi-label U-Nets share: a multi-hot condition over `num_labels` labels, checked, embedded in the time-
embedding space (a linear projection, with a learned embedding of its own for the all-zero null condition), and the
`forward` that takes it.

This file imports only torch and diffusers so that it can travel next to a saved model with the U-Nets that use it.
"""

import torch
from diffusers.models.unets.unet_2d import UNet2DOutput
from torch import nn


class MultiHotLabelsMixin:
    """
    For a diffusers model conditioned on a multi-hot vector over `config.num_labels` labels (a row of zeros is the
    null condition of classifier-free guidance). The model calls `init_label_embedding` in its constructor, which
    makes `label_projection` and `null_label_embedding` (the names of their saved weights), and defines
    `denoise(sample, timestep, labels)`, which `forward` calls with the checked labels.
    """

    def init_label_embedding(self, num_labels: int, embedding_dim: int) -> None:
        self.label_projection = nn.Linear(num_labels, embedding_dim)
        self.null_label_embedding = nn.Parameter(torch.zeros(embedding_dim))

    def check_class_labels(self, class_labels: torch.Tensor | None) -> torch.Tensor:
        """`class_labels` as a multi-hot tensor (batch_size, num_labels) in the projection's dtype; anything else is
        refused."""
        num_labels = self.config.num_labels
        if class_labels is None:
            raise ValueError(
                f"{type(self).__name__} needs class_labels (multi-hot, one row per image); pass a row of zeros for "
                "the null condition."
            )
        if class_labels.ndim != 2 or class_labels.shape[1] != num_labels:
            raise ValueError(
                f"class_labels must be a multi-hot tensor of shape (batch_size, {num_labels}), got shape "
                f"{tuple(class_labels.shape)}."
            )
        return class_labels.to(dtype=self.label_projection.weight.dtype)

    def embed_labels(self, class_labels: torch.Tensor) -> torch.Tensor:
        """
        The embedding of each multi-hot row: its projection, or the learned null embedding for an all-zero row.

        Args:
            class_labels (`torch.Tensor` of shape `(batch_size, num_labels)`): Multi-hot conditions (0/1 values).
        """
        labels = self.check_class_labels(class_labels)
        embedding = self.label_projection(labels)
        is_null = (labels == 0).all(dim=1, keepdim=True)
        return torch.where(is_null, self.null_label_embedding.to(embedding.dtype), embedding)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple:
        """
        Args:
            sample (`torch.Tensor` of shape `(batch_size, channels, height, width)`): Noisy images x_t.
            timestep (`torch.Tensor`, `float` or `int`): Timestep t.
            class_labels (`torch.Tensor` of shape `(batch_size, num_labels)`): Multi-hot conditions; a row of zeros
                is the null condition.
            return_dict (`bool`, defaults to `True`): Return a `UNet2DOutput` instead of a tuple.
        """
        output = self.denoise(sample, timestep, self.check_class_labels(class_labels))
        return UNet2DOutput(sample=output) if return_dict else (output,)
