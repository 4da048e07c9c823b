"""Probes shared by the DDPMCFGPipeline tests: what the U-Net is called with, and what the scheduler is handed."""

import pytest
import torch


@pytest.fixture
def record_unet_calls():
    """`record(pipe)` wraps the pipeline's U-Net and returns the list it fills: (batch size, class_labels as a list
    or None) per forward."""

    def record(pipe):
        calls = []
        original_forward = pipe.unet.forward

        def recording_forward(sample, timestep, class_labels=None, **kwargs):
            calls.append((sample.shape[0], None if class_labels is None else class_labels.tolist()))
            return original_forward(sample, timestep, class_labels=class_labels, **kwargs)

        pipe.unet.forward = recording_forward
        return calls

    return record


@pytest.fixture
def first_step_output(monkeypatch):
    """`run(pipe, start, **call)` calls the pipeline from the latents `start` and returns (timestep, model output) of
    its first scheduler step: the guided prediction the pipeline formed."""

    def run(pipe, start: torch.Tensor, **call):
        import ddpm_hf.pipelines.pipeline_ddpm_cfg as pipeline_module

        monkeypatch.setattr(pipeline_module, "randn_tensor", lambda *args, **kwargs: start.clone())
        captured = []
        original_step = pipe.scheduler.step

        def capturing_step(model_output, timestep, sample, **kwargs):
            captured.append((int(timestep), model_output))
            return original_step(model_output, timestep, sample, **kwargs)

        monkeypatch.setattr(pipe.scheduler, "step", capturing_step)
        pipe(**call)
        return captured[0]

    return run
