"""DDPMCFGPipeline.enable_compiled_sampling: the tensor-only step gives the plain loop's images, for every prediction
type, variance type, guidance setting, strided schedule and model kind; unsupported schedulers are refused or skipped.
"""

import logging
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devices import ON_CUDA, TEST_DEVICE  # noqa: E402

T = 20


@pytest.fixture(autouse=True)
def fresh_compile_caches():
    # every test compiles the same method anew: without a reset, torch's per-function recompile limit runs out
    torch._dynamo.reset()


def tiny_pipeline(prediction_type="epsilon", num_classes=3, multi_label=False, label_conditioning="projection", **kw):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 1, num_classes, multi_label, label_conditioning=label_conditioning)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type=prediction_type, **kw)
    pipe = DDPMCFGPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(TEST_DEVICE)


def plain_and_compiled(pipe, backend="eager", channels_last=False, **call):
    call = {"num_inference_steps": T, "output_type": "pt", **call}
    plain = pipe(generator=torch.Generator().manual_seed(5), **call).images
    pipe.enable_compiled_sampling(mode=None, backend=backend, channels_last=channels_last)
    compiled = pipe(generator=torch.Generator().manual_seed(5), **call).images
    pipe.disable_compiled_sampling()
    return plain, compiled


@pytest.mark.parametrize("prediction_type", ["epsilon", "x0", "v_prediction", "mean"])
@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
def test_every_prediction_type_gives_the_plain_loops_images(prediction_type, guidance_scale):
    pipe = tiny_pipeline(prediction_type)
    plain, compiled = plain_and_compiled(pipe, class_labels=[0, 2, 1], guidance_scale=guidance_scale)
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_small_log", "fixed_large"])
@pytest.mark.parametrize("clip_sample", [True, False])
def test_variance_types_clipping_and_strided_steps(variance_type, clip_sample):
    pipe = tiny_pipeline(variance_type=variance_type, clip_sample=clip_sample)
    plain, compiled = plain_and_compiled(pipe, class_labels=[1, 0], num_inference_steps=7)
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)


def test_channels_last_unet():
    pipe = tiny_pipeline()
    plain, compiled = plain_and_compiled(pipe, channels_last=True, class_labels=[0, 1], guidance_scale=2.0)
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)


def test_a_plain_ddpm_scheduler_is_refused_and_its_extended_twin_gives_its_images():
    pipe = tiny_pipeline(num_classes=None)
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match=r"ExtendedDDPMScheduler.from_config\(pipe.scheduler.config\)"):
        pipe.enable_compiled_sampling()
    call = {"batch_size": 3, "num_inference_steps": T, "output_type": "pt"}
    diffusers_loop = pipe(generator=torch.Generator().manual_seed(5), **call).images
    pipe.scheduler = ExtendedDDPMScheduler.from_config(pipe.scheduler.config)
    _, compiled = plain_and_compiled(pipe, **call)
    torch.testing.assert_close(compiled, diffusers_loop, rtol=1e-4, atol=1e-4)


def test_the_compiled_step_runs_the_schedulers_own_update(monkeypatch):
    # Replace the scheduler's one update function by a visibly different one: both loops must follow it.
    original_update = ExtendedDDPMScheduler.ddpm_update

    def halved_update(*args, **kwargs):
        prev_sample, pred_original_sample = original_update(*args, **kwargs)
        return prev_sample * 0.5, pred_original_sample

    pipe = tiny_pipeline()
    call = {"class_labels": [0, 2], "guidance_scale": 2.0, "num_inference_steps": 5}
    unchanged, _ = plain_and_compiled(pipe, **call)
    monkeypatch.setattr(ExtendedDDPMScheduler, "ddpm_update", staticmethod(halved_update))
    plain, compiled = plain_and_compiled(pipe, **call)
    assert not torch.allclose(plain, unchanged, atol=1e-3)
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("label_conditioning", ["projection", "tokens"])
def test_multi_label_models(label_conditioning):
    pipe = tiny_pipeline(num_classes=4, multi_label=True, label_conditioning=label_conditioning)
    plain, compiled = plain_and_compiled(pipe, class_labels=[[0, 3], [1]], guidance_scale=3.0, num_inference_steps=5)
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)


def test_inductor_backend_and_the_callback():
    # the real compiler once (C++ on the CPU), and callbacks that see x_t and x0 at every step
    pipe = tiny_pipeline()
    seen = []

    def callback(pipe, step_index, timestep, callback_kwargs):
        seen.append((step_index, int(timestep), callback_kwargs["pred_original_sample"].abs().max().item()))
        return {}

    call = {"class_labels": [2], "guidance_scale": 2.0, "num_inference_steps": 4, "output_type": "pt"}
    plain = pipe(generator=torch.Generator().manual_seed(1), **call).images
    pipe.enable_compiled_sampling(mode=None, backend="inductor", fullgraph=True)  # raises on any graph break
    compiled = pipe(
        generator=torch.Generator().manual_seed(1),
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["sample", "pred_original_sample"],
        **call,
    ).images
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)
    assert [(step, t) for step, t, _ in seen] == list(enumerate(pipe.scheduler.timesteps.tolist()))
    assert all(value <= 1.0 for _, _, value in seen)  # x0 clipped as scheduler.step clips it


def test_bfloat16_sampling_stays_in_bfloat16():
    # float32 tables read as 0-dim tensors do not promote a bf16 sample, as in scheduler.step
    pipe = tiny_pipeline().to(torch.bfloat16)
    seen = []

    def callback(pipe, step_index, timestep, callback_kwargs):
        seen.append(callback_kwargs["sample"].dtype)
        return {}

    plain, compiled = plain_and_compiled(
        pipe, class_labels=[0, 1], guidance_scale=2.0, num_inference_steps=5, callback_on_step_end=callback
    )
    assert compiled.dtype == plain.dtype == torch.bfloat16 and set(seen) == {torch.bfloat16}
    torch.testing.assert_close(compiled, plain, rtol=0, atol=0.02)


def test_unsupported_schedulers_are_refused_then_skipped_with_a_warning(caplog):
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match="variance_type in"):
        tiny_pipeline(variance_type="learned_range").enable_compiled_sampling()
    with pytest.raises(ValueError, match="thresholding=True"):
        tiny_pipeline(thresholding=True).enable_compiled_sampling()
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="update of ExtendedDDPMScheduler; this pipeline has DDIMScheduler"):
        pipe.enable_compiled_sampling()
    pipe = tiny_pipeline()
    pipe.enable_compiled_sampling(mode=None, backend="eager")
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    expected = pipe.__class__(unet=pipe.unet, scheduler=pipe.scheduler)
    expected.set_progress_bar_config(disable=True)
    with caplog.at_level(logging.WARNING):
        images = pipe(class_labels=[0], num_inference_steps=3, output_type="pt", generator=torch.manual_seed(0))
    assert "plain loop" in caplog.text
    reference = expected(class_labels=[0], num_inference_steps=3, output_type="pt", generator=torch.manual_seed(0))
    torch.testing.assert_close(images.images, reference.images)


def test_a_new_guidance_scale_reuses_the_compiled_step():
    pipe = tiny_pipeline()
    pipe.enable_compiled_sampling(mode=None, backend="eager")
    call = {"class_labels": [0, 1], "num_inference_steps": 3, "output_type": "pt"}
    pipe(guidance_scale=2.0, **call)
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    images = pipe(guidance_scale=4.0, generator=torch.Generator().manual_seed(2), **call).images
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames_before
    pipe.disable_compiled_sampling()
    expected = pipe(guidance_scale=4.0, generator=torch.Generator().manual_seed(2), **call).images
    torch.testing.assert_close(images, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not ON_CUDA, reason="CUDA graphs: run with DDPM_HF_TEST_DEVICE=cuda on a GPU machine")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cuda_graph_sampling_gives_the_plain_loops_images(dtype):
    # the default mode, reduce-overhead with inductor: one CUDA graph per step, captured on the first call, replayed
    pipe = tiny_pipeline().to(dtype)
    call = {"class_labels": [0, 2, 1], "guidance_scale": 2.5, "num_inference_steps": T, "output_type": "pt"}
    plain = pipe(generator=torch.Generator().manual_seed(5), **call).images
    pipe.enable_compiled_sampling()
    captured, replayed = (pipe(generator=torch.Generator().manual_seed(5), **call).images for _ in range(2))
    difference = max((captured.float() - plain.float()).abs().max(), (replayed.float() - plain.float()).abs().max())
    print(f"{dtype}: max |CUDA graph - plain loop| = {difference.item():.2e}")
    # float32: fused kernels round differently (as the CPU tests' 1e-4); bf16: as test_bfloat16_sampling_stays_in_bf16
    torch.testing.assert_close(replayed, plain, rtol=0, atol=1e-4 if dtype == torch.float32 else 0.02)
    torch.testing.assert_close(captured, replayed, rtol=0, atol=0)  # a replay is the capture's own computation
