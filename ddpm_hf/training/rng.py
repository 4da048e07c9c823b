"""A random stream for the training noise that checkpoints with the run."""

import torch


class TrainingRNG:
    """
    Owns the `torch.Generator` that draws the diffusion noise, timesteps and condition drops, so that they do not
    depend on how often other code (data loader workers, samplers) touches the global RNG. Saved and restored with
    `save_checkpoint(..., process_states={"training_rng": rng})` and `load_checkpoint`, it makes a resumed run draw
    exactly what the uninterrupted run drew.

    Args:
        seed (`int`): Seed of the stream; give each process its own (e.g. seed + process_index).
        device (`torch.device` or `str`, defaults to `"cpu"`): Device the draws are made on.
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu"):
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def state_dict(self) -> dict:
        return {"generator_state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator_state"])
