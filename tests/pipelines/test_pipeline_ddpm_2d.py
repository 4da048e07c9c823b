import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from ddpm_hf import DDPM2DPipeline, ExtendedDDPMScheduler, MLP2DModel
from ddpm_hf.models import MLP2DOutput

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_targets import exact_model_output  # noqa: E402

T = 100


def tiny_pipeline(prediction_type="epsilon", seed=0):
    torch.manual_seed(seed)
    model = MLP2DModel(hidden_dims=(16, 16), time_embedding_dim=8)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type=prediction_type, clip_sample=False)
    pipe = DDPM2DPipeline(model=model, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_output_shapes_and_tuple_access():
    pipe = tiny_pipeline()
    out = pipe(batch_size=9, generator=generator(), num_inference_steps=10, return_trajectory=True)
    assert isinstance(out[0], np.ndarray) and out[0].shape == (9, 2)
    assert out.trajectory.shape == (11, 9, 2)
    np.testing.assert_array_equal(out.trajectory[-1], out.samples)
    as_tuple = pipe(batch_size=4, generator=generator(), num_inference_steps=3, return_dict=False)
    assert len(as_tuple) == 1 and as_tuple[0].shape == (4, 2)
    as_tensor = pipe(batch_size=4, generator=generator(), num_inference_steps=3, output_type="pt")[0]
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (4, 2)


def test_default_runs_all_training_timesteps():
    pipe = tiny_pipeline()
    out = pipe(batch_size=2, generator=generator(), return_trajectory=True)
    assert out.trajectory.shape[0] == T + 1


def test_generator_makes_it_deterministic():
    pipe = tiny_pipeline()
    first = pipe(batch_size=5, generator=generator(1), num_inference_steps=8)[0]
    again = pipe(batch_size=5, generator=generator(1), num_inference_steps=8)[0]
    other = pipe(batch_size=5, generator=generator(2), num_inference_steps=8)[0]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction", "mean"])
def test_save_and_load_give_the_same_samples(tmp_path, prediction_type):
    pipe = tiny_pipeline(prediction_type)
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").exists()
    assert (tmp_path / "model" / "diffusion_pytorch_model.safetensors").exists()
    loaded = DDPM2DPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.scheduler, ExtendedDDPMScheduler)
    assert loaded.scheduler.config.prediction_type == prediction_type
    expected = pipe(batch_size=6, generator=generator(), num_inference_steps=7)[0]
    np.testing.assert_array_equal(loaded(batch_size=6, generator=generator(), num_inference_steps=7)[0], expected)


def test_pickled_weights_are_refused_not_unpickled(tmp_path):
    class RunsCodeWhenUnpickled:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'MARKER')!r}, 'w').write('unpickled')",))

    tiny_pipeline().save_pretrained(tmp_path)
    (tmp_path / "model" / "diffusion_pytorch_model.safetensors").unlink()
    with open(tmp_path / "model" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump(RunsCodeWhenUnpickled(), f)
    with pytest.raises(OSError, match="safetensors"):
        DDPM2DPipeline.from_pretrained(tmp_path)
    assert not (tmp_path / "MARKER").exists()


def test_saved_folder_carries_its_source_and_loads_in_plain_diffusers_without_ddpm_hf(tmp_path):
    pipe = tiny_pipeline(prediction_type="mean")
    pipe.save_pretrained(tmp_path / "model")
    folder = tmp_path / "model"
    copies = {os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder)
              for name in names if name.endswith(".py")}  # fmt: skip
    assert copies == {"pipeline_ddpm_2d.py", "input_checks.py", "portable_folder.py", "model/mlp_2d.py",
                      "scheduler/scheduling_ddpm_ext.py"}  # fmt: skip
    model_index = json.loads((folder / "model_index.json").read_text())
    assert model_index["_class_name"] == ["pipeline_ddpm_2d", "DDPM2DPipeline"]
    assert model_index["model"] == ["mlp_2d", "MLP2DModel"]
    assert model_index["scheduler"] == ["scheduling_ddpm_ext", "ExtendedDDPMScheduler"]
    expected = pipe(batch_size=6, generator=generator(), num_inference_steps=7)[0]
    # ddpm_hf's route uses its own classes, never the copies
    loaded = DDPM2DPipeline.from_pretrained(folder)
    assert type(loaded.model) is MLP2DModel and type(loaded.scheduler) is ExtendedDDPMScheduler
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(loaded(batch_size=6, generator=generator(), num_inference_steps=7)[0], expected)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["ddpm_hf"] = None
        import numpy as np, torch
        from diffusers import DiffusionPipeline
        pipe = DiffusionPipeline.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(pipe.model).__module__ == "diffusers_modules.local.mlp_2d", type(pipe.model).__module__
        pipe.set_progress_bar_config(disable=True)
        points = pipe(batch_size=6, generator=torch.Generator().manual_seed(0), num_inference_steps=7)[0]
        np.save({str(tmp_path / "points.npy")!r}, points)
    """)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "points.npy"), expected)


def test_folders_saved_before_the_source_copies_still_load(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path)
    model_index = json.loads((tmp_path / "model_index.json").read_text())
    model_index.update(_class_name="DDPM2DPipeline", model=["ddpm_hf.models.mlp_2d", "MLP2DModel"],
                       scheduler=["ddpm_hf.schedulers.scheduling_ddpm_ext", "ExtendedDDPMScheduler"])  # fmt: skip
    (tmp_path / "model_index.json").write_text(json.dumps(model_index))
    for copy in tmp_path.rglob("*.py"):
        copy.unlink()
    loaded = DDPM2DPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    expected = pipe(batch_size=4, generator=generator(), num_inference_steps=5)[0]
    np.testing.assert_array_equal(loaded(batch_size=4, generator=generator(), num_inference_steps=5)[0], expected)


# ---------- exact model of a Gaussian: the sampler must reproduce the data distribution ----------

DATA_MEAN = (1.5, -0.5)
DATA_STD = 0.5


class GaussianOptimalModel(ModelMixin, ConfigMixin):
    """The exact minimiser of the training loss when x0 ~ N(DATA_MEAN, DATA_STD^2 I), for any prediction type."""

    @register_to_config
    def __init__(self, sample_dim: int = 2, prediction_type: str = "epsilon", num_train_timesteps: int = T):
        super().__init__()
        betas = np.linspace(1e-4, 0.02 * 1000 / num_train_timesteps, num_train_timesteps, dtype=np.float64)
        self.alphas_cumprod = np.cumprod(1 - betas)
        self.data_mean = torch.nn.Parameter(torch.tensor(DATA_MEAN, dtype=torch.float64), requires_grad=False)

    def forward(self, sample, timestep):
        t = int(timestep)
        alpha_bar = self.alphas_cumprod[t]
        alpha_bar_prev = self.alphas_cumprod[t - 1] if t > 0 else 1.0
        xt = sample.double()
        mean = self.data_mean
        # E[x0 | x_t] for a Gaussian prior (conjugate update)
        gain = alpha_bar**0.5 * DATA_STD**2 / (alpha_bar * DATA_STD**2 + 1 - alpha_bar)
        x0 = mean + gain * (xt - alpha_bar**0.5 * mean)
        output = exact_model_output(self.config.prediction_type, x0, xt, alpha_bar, alpha_bar_prev)
        return MLP2DOutput(sample=output.to(sample.dtype))


def gaussian_pipeline(prediction_type):
    scheduler = ExtendedDDPMScheduler(
        num_train_timesteps=T, beta_end=0.02 * 1000 / T, prediction_type=prediction_type, clip_sample=False
    )
    pipe = DDPM2DPipeline(model=GaussianOptimalModel(prediction_type=prediction_type), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def closed_form_output_moments(timesteps, alphas_cumprod, deterministic):
    """Mean and std of what DDPM (or DDIM with eta = 0) sampling with the exact model of a Gaussian produces.

    Every step is affine in x_t: x_prev = a * x_t + b + sigma * z, so mean and variance follow in float64.
    """
    gain = lambda ab: ab**0.5 * DATA_STD**2 / (ab * DATA_STD**2 + 1 - ab)  # noqa: E731
    mean, variance = np.zeros(2), 1.0
    data_mean = np.array(DATA_MEAN)
    for index, t in enumerate(timesteps):
        ab = alphas_cumprod[t]
        ab_prev = alphas_cumprod[timesteps[index + 1]] if index + 1 < len(timesteps) else 1.0
        # x0_hat = data_mean + g (x_t - sqrt(ab) data_mean) = g x_t + k
        g, k = gain(ab), (1 - gain(ab) * ab**0.5) * data_mean
        if deterministic:  # DDIM, eq. 12 of Song et al. 2021 with eta = 0: sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps
            eps_scale = ((1 - ab_prev) / (1 - ab)) ** 0.5
            a, b, sigma2 = (
                ab_prev**0.5 * g + eps_scale * (1 - ab**0.5 * g),
                (ab_prev**0.5 - eps_scale * ab**0.5) * k,
                0,
            )
        else:  # DDPM posterior q(x_prev | x_t, x0_hat), Ho et al. eq. 7, over the strided step
            beta = 1 - ab / ab_prev
            coef_x0, coef_xt = ab_prev**0.5 * beta / (1 - ab), (1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab)
            a, b, sigma2 = coef_x0 * g + coef_xt, coef_x0 * k, (1 - ab_prev) / (1 - ab) * beta
        mean, variance = a * mean + b, a**2 * variance + sigma2
    return mean, variance**0.5


def assert_moments(samples, mean, std):
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.02)
    np.testing.assert_allclose(samples.std(axis=0), std, rtol=0.02)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction", "mean"])
@pytest.mark.parametrize("num_inference_steps", [T, 25])
def test_ddpm_sampling_of_an_exact_model_matches_closed_form(prediction_type, num_inference_steps):
    pipe = gaussian_pipeline(prediction_type)
    samples = pipe(batch_size=20000, generator=generator(), num_inference_steps=num_inference_steps)[0]
    timesteps = pipe.scheduler.timesteps.tolist()
    alphas_cumprod = pipe.model.alphas_cumprod
    assert_moments(samples, *closed_form_output_moments(timesteps, alphas_cumprod, deterministic=False))


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_ddim_swap_samples_the_exact_model_as_closed_form(prediction_type):
    pipe = gaussian_pipeline(prediction_type)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    samples = pipe(batch_size=20000, generator=generator(), num_inference_steps=20)[0]
    timesteps = pipe.scheduler.timesteps.tolist()
    assert_moments(samples, *closed_form_output_moments(timesteps, pipe.model.alphas_cumprod, deterministic=True))


def test_dpm_solver_swap_agrees_across_prediction_types_and_reaches_the_data():
    results = []
    for prediction_type in ["epsilon", "sample", "v_prediction"]:
        pipe = gaussian_pipeline(prediction_type)
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        results.append(pipe(batch_size=20000, generator=generator(), num_inference_steps=50)[0])
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], atol=1e-4)
    # second order: at 50 steps, within 2% of the data distribution
    assert_moments(results[0], DATA_MEAN, DATA_STD)


def test_mean_prediction_with_ddim_is_refused_with_the_reason():
    pipe = gaussian_pipeline("mean")
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="posterior mean.*ExtendedDDPMScheduler"):
        pipe(batch_size=2, num_inference_steps=5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"num_inference_steps": T + 1}, f"1..{T}"),
        ({"num_inference_steps": 0}, f"1..{T}"),
        ({"output_type": "pil"}, r"output_type must be one of \['np', 'numpy', 'pt'\]"),
    ],
)
def test_bad_input(kwargs, message):
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match=message):
        pipe(**{"batch_size": 2, **kwargs})
