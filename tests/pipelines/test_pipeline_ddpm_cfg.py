import numpy as np
import PIL.Image
import pytest
import torch

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

T = 20
NAMES = {0: "zero", 1: "one", 2: "two"}


def tiny_pipeline(num_classes=3, channels=1, prediction_type="epsilon"):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, channels, num_classes)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type=prediction_type)
    pipe = DDPMCFGPipeline(unet=unet, scheduler=scheduler, id2label=NAMES if num_classes == 3 else None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("output_type, kind", [("pil", PIL.Image.Image), ("np", np.ndarray), ("pt", torch.Tensor)])
def test_output_types(output_type, kind):
    pipe = tiny_pipeline(channels=3)
    images = pipe(class_labels=[0, 1], num_inference_steps=3, generator=generator(), output_type=output_type)[0]
    if output_type == "pil":
        assert len(images) == 2 and images[0].size == (8, 8) and images[0].mode == "RGB"
    elif output_type == "np":
        assert isinstance(images, kind) and images.shape == (2, 8, 8, 3)
        assert images.min() >= 0 and images.max() <= 1
    else:
        assert isinstance(images, kind) and images.shape == (2, 3, 8, 8)


def test_names_and_ids_give_the_same_images():
    pipe = tiny_pipeline()
    by_id = pipe(class_labels=[2, 0], num_inference_steps=4, generator=generator(), output_type="np").images
    by_name = pipe(class_labels=["two", "zero"], num_inference_steps=4, generator=generator(), output_type="np").images
    np.testing.assert_array_equal(by_id, by_name)
    one_for_all = pipe(class_labels="one", batch_size=3, num_inference_steps=2, output_type="np").images
    assert one_for_all.shape[0] == 3


def test_guidance_runs_one_batched_forward_per_step_with_the_null_class(record_unet_calls):
    pipe = tiny_pipeline()
    calls = record_unet_calls(pipe)
    pipe(class_labels=[0, 2], guidance_scale=3.0, num_inference_steps=5, generator=generator())
    assert len(calls) == 5
    assert all(batch == 4 and labels == [0, 2, 3, 3] for batch, labels in calls)


@pytest.mark.parametrize("guidance_scale, expected_labels", [(1.0, [0, 2]), (0.0, [3, 3])])
def test_scale_one_or_zero_runs_a_single_pass(guidance_scale, expected_labels, record_unet_calls):
    pipe = tiny_pipeline()
    calls = record_unet_calls(pipe)
    pipe(class_labels=[0, 2], guidance_scale=guidance_scale, num_inference_steps=3, generator=generator())
    assert [labels for _, labels in calls] == [expected_labels] * 3


def test_guided_output_is_the_cfg_combination(first_step_output):
    pipe = tiny_pipeline()
    start = torch.randn(2, 1, 8, 8, generator=generator(5))
    timestep, guided = first_step_output(pipe, start, class_labels=[1, 2], guidance_scale=2.5, num_inference_steps=1)
    with torch.no_grad():
        conditional = pipe.unet(start, timestep, class_labels=torch.tensor([1, 2])).sample
        unconditional = pipe.unet(start, timestep, class_labels=torch.tensor([3, 3])).sample
    torch.testing.assert_close(guided, unconditional + 2.5 * (conditional - unconditional), rtol=1e-5, atol=1e-5)


def test_guidance_changes_the_images_and_the_generator_fixes_them():
    pipe = tiny_pipeline()
    kwargs = dict(class_labels=[1, 1], num_inference_steps=4, output_type="np")
    first = pipe(guidance_scale=3.0, generator=generator(1), **kwargs).images
    again = pipe(guidance_scale=3.0, generator=generator(1), **kwargs).images
    unguided = pipe(guidance_scale=1.0, generator=generator(1), **kwargs).images
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, unguided)


def test_save_and_load_keep_class_names_and_images(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path)
    loaded = DDPMCFGPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.id2label == NAMES
    kwargs = dict(class_labels=["one", "two"], num_inference_steps=3, output_type="np")
    np.testing.assert_allclose(
        loaded(generator=generator(), **kwargs).images, pipe(generator=generator(), **kwargs).images, atol=1e-5
    )


def test_callback_sees_every_step():
    pipe = tiny_pipeline()
    seen = []

    def callback(pipe, step_index, timestep, callback_kwargs):
        seen.append((step_index, int(timestep), callback_kwargs["sample"].shape))
        return {}

    pipe(class_labels=[0], num_inference_steps=4, callback_on_step_end=callback)
    assert [step for step, _, _ in seen] == [0, 1, 2, 3]
    assert [t for _, t, _ in seen] == pipe.scheduler.timesteps.tolist()


def test_unconditional_model():
    pipe = tiny_pipeline(num_classes=None)
    images = pipe(batch_size=2, num_inference_steps=2, output_type="np").images
    assert images.shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="unconditional"):
        pipe(class_labels=[0], num_inference_steps=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"class_labels": [5]}, r"Unknown class 5; valid ids are 0..2 and valid names are \['zero', 'one', 'two'\]"),
        ({"class_labels": ["three"]}, "Unknown class 'three'"),
        ({"class_labels": [0, 1], "batch_size": 3}, "2 class_labels for batch_size 3"),
        ({"class_labels": [0], "guidance_scale": -1.0}, "guidance_scale"),
        ({"class_labels": [0], "num_inference_steps": T + 1}, f"1..{T}"),
        ({"class_labels": [0], "num_inference_steps": 0}, f"1..{T}"),
        ({"batch_size": 0}, "batch_size"),
        ({"class_labels": [0], "output_type": "jpg"}, "output_type"),
        ({"class_labels": [0, 1, 2], "generator": [generator(0), generator(1)]}, "got 2 item.*batch_size 3"),
        ({"class_labels": [0], "generator": [generator(0)] * 5}, "got 5 item.*batch_size 1"),
        ({"class_labels": [0], "generator": 7}, "torch.Generator"),
        ({"class_labels": ["x" * 1_000_000]}, r"Unknown class 'x{59}\.\.\. \(1000002 characters\)"),
    ],
)
def test_bad_input(kwargs, message):
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match=message):
        pipe(**{"num_inference_steps": 2, **kwargs})


def test_a_generator_per_image_fixes_each_image():
    pipe = tiny_pipeline()
    both = pipe([0, 1], generator=[generator(3), generator(4)], num_inference_steps=3, output_type="pt").images
    first = pipe([0], generator=[generator(3)], num_inference_steps=3, output_type="pt").images
    second = pipe([1], generator=[generator(4)], num_inference_steps=3, output_type="pt").images
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver++"])  # DDPM clips x0, which keeps this case finite
def test_non_finite_samples_raise_instead_of_black_images(sampler):
    from ddpm_hf.sampling import make_sampler

    pipe = tiny_pipeline()
    pipe.scheduler = make_sampler(sampler, pipe.scheduler.config)
    with pytest.raises(ValueError, match=r"non-finite values.*guidance_scale=1e\+30"):
        pipe(class_labels=[0, 1], guidance_scale=1e30, num_inference_steps=5)


def two_pass_reference(pipe, scheduler, class_ids, guidance_scale, num_steps, seed):
    """The usual hand-written CFG loop: the U-Net called twice per step, then the scheduler's step."""
    gen = generator(seed)
    config = pipe.unet.config
    sample = (
        torch.randn((len(class_ids), config.in_channels, config.sample_size, config.sample_size), generator=gen)
        * scheduler.init_noise_sigma
    )
    scheduler.set_timesteps(num_steps)
    conditional_ids, null_ids = torch.tensor(class_ids), torch.full((len(class_ids),), pipe.num_classes)
    with torch.no_grad():
        for timestep in scheduler.timesteps:
            model_input = scheduler.scale_model_input(sample, timestep)
            conditional = pipe.unet(model_input, timestep, class_labels=conditional_ids).sample
            unconditional = pipe.unet(model_input, timestep, class_labels=null_ids).sample
            guided = unconditional + guidance_scale * (conditional - unconditional)
            sample = scheduler.step(guided, timestep, sample, generator=gen).prev_sample
    return (sample / 2 + 0.5).clamp(0, 1)


@pytest.mark.parametrize("sampler, num_steps", [("ddpm", T), ("ddim", 6), ("dpm_solver++", 5)])
@pytest.mark.parametrize("prediction_type", ["epsilon", "x0", "v_prediction"])
def test_every_sampler_and_prediction_type_matches_the_two_pass_loop(sampler, num_steps, prediction_type):
    from ddpm_hf.sampling import make_sampler

    pipe = tiny_pipeline(prediction_type=prediction_type)
    pipe.scheduler = make_sampler(sampler, pipe.scheduler.config)
    images = pipe(class_labels=[0, 2], guidance_scale=2.0, num_inference_steps=num_steps, generator=generator(3),
                  output_type="pt").images  # fmt: skip
    reference_scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    expected = two_pass_reference(pipe, reference_scheduler, [0, 2], 2.0, num_steps, seed=3)
    torch.testing.assert_close(images, expected, rtol=1e-4, atol=1e-4)


def test_mean_prediction_refuses_other_samplers_but_samples_with_its_own():
    from diffusers import DDIMScheduler

    from ddpm_hf.sampling import make_sampler

    pipe = tiny_pipeline(prediction_type="mean")
    assert pipe(class_labels=[1], num_inference_steps=T, output_type="np").images.shape == (1, 8, 8, 1)
    with pytest.raises(ValueError, match="posterior mean.*'ddpm' sampler"):
        make_sampler("ddim", pipe.scheduler.config)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="posterior mean.*ExtendedDDPMScheduler"):
        pipe(class_labels=[1], num_inference_steps=5)


def test_unknown_sampler_lists_the_known_ones():
    from ddpm_hf.sampling import default_num_steps, make_sampler

    with pytest.raises(ValueError, match=r"Unknown sampler 'euler'; choose from \['ddpm', 'ddim', 'dpm_solver\+\+'\]"):
        make_sampler("euler", tiny_pipeline().scheduler.config)
    assert [default_num_steps(name, 400) for name in ("ddpm", "ddim", "dpm_solver++")] == [400, 50, 20]
    assert default_num_steps("ddim", 30) == 30 and default_num_steps("dpm_solver++", 30) == 15


def test_ddim_sampler_does_not_clip_x0():
    # DDIM re-derives epsilon from a clipped x0, which ruins guided samples (measured in docs/PIPELINE.md)
    from ddpm_hf.sampling import make_sampler

    scheduler = make_sampler("ddim", tiny_pipeline().scheduler.config)
    assert scheduler.config.clip_sample is False
    assert tiny_pipeline().scheduler.config.clip_sample is True  # the training scheduler keeps diffusers' default
