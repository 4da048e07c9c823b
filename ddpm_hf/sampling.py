"""The named samplers for ddpm_hf's scripts: the one table in `ddpm_hf.pipelines.samplers` (which travels with every
saved model), with ddpm_hf's `ExtendedDDPMScheduler` as the "ddpm" sampler, since it steps every prediction type.

It sits above both the schedulers and the pipelines, so that neither layer imports the other.
"""

from .pipelines.samplers import SAMPLERS, default_num_steps, samplers_for
from .pipelines.samplers import make_sampler as make_named_sampler
from .schedulers import ExtendedDDPMScheduler

__all__ = ["SAMPLERS", "default_num_steps", "make_sampler", "samplers_for"]


def make_sampler(name: str, scheduler_config):
    """
    A scheduler of sampler `name` (`"ddpm"`, `"ddim"` or `"dpm_solver++"`) with the noise schedule and prediction type
    of `scheduler_config` (a trained model's scheduler config), `ExtendedDDPMScheduler` for `"ddpm"`.

    Example:
        ```py
        >>> from ddpm_hf.sampling import default_num_steps, make_sampler
        >>> pipe.scheduler = make_sampler("dpm_solver++", pipe.scheduler.config)
        >>> images = pipe(num_inference_steps=default_num_steps("dpm_solver++", 1000)).images
        ```
    """
    return make_named_sampler(name, scheduler_config, ExtendedDDPMScheduler)
