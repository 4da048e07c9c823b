"""The one table of named samplers (pipelines/samplers.py): what each name builds, its usual steps, the models it can
step, `DDPMCFGPipeline.set_sampler`, and ddpm_hf.sampling, which gives the table to the scripts."""

import ast
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet, pipelines

samplers = pipelines.samplers  # pipelines/samplers.py, installed as ddpm_hf.pipelines.samplers

REPO = Path(__file__).resolve().parents[2]
T = 20


def tiny_pipeline(prediction_type="epsilon"):
    torch.manual_seed(0)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule="cosine", prediction_type=prediction_type)
    pipe = DDPMCFGPipeline(unet=make_unet("tiny", 8, 1, 3).eval(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_each_name_builds_its_scheduler_from_the_models_schedule():
    config = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule="quad", prediction_type="x0").config
    expected = {
        "ddpm": (DDPMScheduler, {"clip_sample": True}),  # diffusers' default: the training scheduler's own setting
        "ddim": (DDIMScheduler, {"clip_sample": False}),
        "dpm_solver++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    }
    assert list(samplers.SAMPLERS) == list(expected)
    for name, (scheduler_class, settings) in expected.items():
        scheduler = samplers.make_sampler(name, config)
        assert type(scheduler) is scheduler_class, name
        assert {key: scheduler.config[key] for key in settings} == settings, name
        # the model's schedule and parameterisation, as diffusers names them
        assert scheduler.config.num_train_timesteps == T and scheduler.config.beta_schedule == "scaled_linear"
        assert scheduler.config.prediction_type == "sample"
    assert type(samplers.make_sampler("ddpm", config, ExtendedDDPMScheduler)) is ExtendedDDPMScheduler
    assert [entry.title for entry in samplers.SAMPLERS.values()] == ["DDPM", "DDIM", "DPM-Solver++"]


@pytest.mark.parametrize("num_train_timesteps", [1, 2, 20, 30, 39, 40, 41, 100, 400, 1000])
def test_usual_steps_are_t_50_and_20_within_what_each_sampler_can_run(num_train_timesteps):
    # DPM-Solver++ rounds its evenly spaced timesteps: beyond T // 2 steps two of them coincide (T = 20 with 20 steps
    # gives timestep 10 twice) and its update divides by zero, so it stops at T // 2
    expected = [num_train_timesteps, min(50, num_train_timesteps), min(20, max(num_train_timesteps // 2, 1))]
    assert [samplers.default_num_steps(name, num_train_timesteps) for name in samplers.SAMPLERS] == expected


def test_a_posterior_mean_model_is_stepped_by_ddpm_only():
    config = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type="mean").config
    assert samplers.samplers_for(config) == ["ddpm"]
    assert samplers.samplers_for(ExtendedDDPMScheduler(prediction_type="v_prediction").config) == list(
        samplers.SAMPLERS
    )
    for name in ("ddim", "dpm_solver++"):
        with pytest.raises(ValueError, match=r"posterior mean .*'ddpm' sampler"):
            samplers.make_sampler(name, config, ExtendedDDPMScheduler)
    with pytest.raises(ValueError, match="DDPMScheduler cannot step"):  # diffusers' DDPM does not know the mean
        samplers.make_sampler("ddpm", config)
    assert samplers.make_sampler("ddpm", config, ExtendedDDPMScheduler).config.prediction_type == "mean"


def test_unknown_names_are_refused_with_the_known_ones():
    for call in (lambda: samplers.make_sampler("euler", {}), lambda: samplers.default_num_steps("euler", 10)):
        with pytest.raises(
            ValueError, match=r"Unknown sampler 'euler'; choose from \['ddpm', 'ddim', 'dpm_solver\+\+'\]"
        ):
            call()


def test_set_sampler_builds_every_sampler_from_the_models_own_scheduler():
    pipe = tiny_pipeline()
    model_config = dict(pipe.scheduler.config)
    pipe.set_sampler("ddim")
    assert type(pipe.scheduler) is DDIMScheduler and pipe.scheduler.config.clip_sample is False
    pipe.set_sampler("dpm_solver++")
    assert type(pipe.scheduler) is DPMSolverMultistepScheduler
    pipe.set_sampler("ddpm")  # back to the model's own DDPM, with its settings (not DDIM's clip_sample=False)
    assert type(pipe.scheduler) is ExtendedDDPMScheduler and dict(pipe.scheduler.config) == model_config
    # the same images as swapping the scheduler by hand
    pipe.set_sampler("ddim")
    by_name = pipe(class_labels=[0, 2], num_inference_steps=5, generator=torch.manual_seed(1), output_type="pt")
    pipe.scheduler = DDIMScheduler.from_config(model_config, clip_sample=False)
    by_hand = pipe(class_labels=[0, 2], num_inference_steps=5, generator=torch.manual_seed(1), output_type="pt")
    torch.testing.assert_close(by_name.images, by_hand.images, rtol=0, atol=0)


def test_set_sampler_follows_a_ddpm_scheduler_put_in_place_and_refuses_what_cannot_step():
    pipe = tiny_pipeline()
    pipe.scheduler = ExtendedDDPMScheduler(num_train_timesteps=10, beta_schedule="linear")
    pipe.set_sampler("ddim")
    assert pipe.scheduler.config.num_train_timesteps == 10 and pipe.scheduler.config.beta_schedule == "linear"
    mean = tiny_pipeline(prediction_type="mean")
    with pytest.raises(ValueError, match="posterior mean"):
        mean.set_sampler("dpm_solver++")
    assert type(mean.scheduler) is ExtendedDDPMScheduler  # left as it was
    with pytest.raises(ValueError, match="Unknown sampler 'euler'"):
        mean.set_sampler("euler")


def test_ddpm_hf_sampling_gives_the_table_to_the_scripts_with_the_extended_scheduler():
    from ddpm_hf.sampling import SAMPLERS, default_num_steps, make_sampler

    assert SAMPLERS is samplers.SAMPLERS and default_num_steps is samplers.default_num_steps
    config = DDPMScheduler(num_train_timesteps=T).config  # even a diffusers folder's: ddpm is ExtendedDDPMScheduler
    assert type(make_sampler("ddpm", config)) is ExtendedDDPMScheduler
    assert (
        type(make_sampler("ddim", config)) is DDIMScheduler
        and make_sampler("ddim", config).config.clip_sample is False
    )


def test_the_scheduler_layer_does_not_import_the_pipelines():
    for path in (REPO / "ddpm_hf" / "schedulers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "pipelines" not in (node.module or ""), path.name
            if isinstance(node, ast.Import):
                assert not any("pipelines" in alias.name for alias in node.names), path.name
