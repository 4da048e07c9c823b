"""DDPMCFGPipeline with a multi-label U-Net: label lists by name or id, multi-hot tensors, the all-zero null row in
the one batched guided forward, save/load, and bad conditions."""

import numpy as np
import pytest
import torch

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

T = 20
NAMES = {0: "red cube", 1: "blue sphere", 2: "green cylinder", 3: "gray cube"}


def tiny_pipeline():
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 3, len(NAMES), multi_label=True)
    with torch.no_grad():
        unet.null_label_embedding.normal_()
    pipe = DDPMCFGPipeline(unet=unet, scheduler=ExtendedDDPMScheduler(num_train_timesteps=T), id2label=NAMES)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_names_ids_and_multi_hot_give_the_same_images():
    pipe = tiny_pipeline()
    assert pipe.is_multi_label and pipe.num_classes == 4
    kwargs = dict(num_inference_steps=4, output_type="np", guidance_scale=2.0)
    by_name = pipe(class_labels=[["blue sphere", "gray cube"], ["red cube"]], generator=generator(), **kwargs).images
    by_id = pipe(class_labels=[[3, 1], [0]], generator=generator(), **kwargs).images
    multi_hot = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 0]])
    by_tensor = pipe(class_labels=multi_hot, generator=generator(), **kwargs).images
    np.testing.assert_array_equal(by_name, by_id)
    np.testing.assert_array_equal(by_name, by_tensor)
    assert by_name.shape == (2, 8, 8, 3)


def test_guidance_batches_each_condition_with_the_all_zero_null_row(record_unet_calls):
    pipe = tiny_pipeline()
    calls = record_unet_calls(pipe)
    pipe(class_labels=[["blue sphere", "gray cube"]], batch_size=2, guidance_scale=3.0, num_inference_steps=3)
    condition, null = [0.0, 1.0, 0.0, 1.0], [0.0] * 4
    assert calls == [(4, [condition, condition, null, null])] * 3
    calls.clear()
    pipe(batch_size=2, num_inference_steps=2)  # no labels: one pass with the null condition
    assert calls == [(2, [null, null])] * 2


def test_guided_output_is_the_cfg_combination(first_step_output):
    pipe = tiny_pipeline()
    start = torch.randn(1, 3, 8, 8, generator=generator(5))
    timestep, guided = first_step_output(
        pipe, start, class_labels=[["red cube", "green cylinder"]], guidance_scale=2.5, num_inference_steps=1
    )
    with torch.no_grad():
        conditional = pipe.unet(start, timestep, class_labels=torch.tensor([[1.0, 0, 1, 0]])).sample
        unconditional = pipe.unet(start, timestep, class_labels=torch.zeros(1, 4)).sample
    torch.testing.assert_close(guided, unconditional + 2.5 * (conditional - unconditional), rtol=1e-5, atol=1e-5)


def test_label_sets_and_guidance_change_the_images():
    pipe = tiny_pipeline()
    kwargs = dict(num_inference_steps=4, output_type="np", generator=None)

    def images(labels, scale):
        return pipe(class_labels=labels, guidance_scale=scale, **{**kwargs, "generator": generator(1)}).images

    base = images([["red cube"]], 3.0)
    assert not np.allclose(base, images([["red cube", "gray cube"]], 3.0))
    assert not np.allclose(base, images([["red cube"]], 1.0))
    np.testing.assert_array_equal(base, images([["red cube"]], 3.0))


def test_save_and_load_keep_the_labels_and_the_images(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path)
    # the U-Net's source and the label embedding it imports travel together
    assert (tmp_path / "unet" / "conditional_unet.py").is_file() and (
        tmp_path / "unet" / "multi_hot_labels.py"
    ).is_file()
    loaded = DDPMCFGPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.is_multi_label and loaded.id2label == NAMES
    kwargs = dict(class_labels=[["gray cube"], ["red cube", "blue sphere"]], num_inference_steps=3, output_type="np")
    np.testing.assert_allclose(
        loaded(generator=generator(), **kwargs).images, pipe(generator=generator(), **kwargs).images, atol=1e-5
    )


@pytest.mark.parametrize(
    "class_labels, message",
    [
        (
            ["red cube", "gray cube"],
            r"one list of label names or ids per image \(e.g. \[\['red cube', 'blue sphere'\]",
        ),
        ("red cube", "must be a list with one list of label names or ids per image"),
        ([["purple cone"]], r"Unknown class 'purple cone'; valid ids are 0..3"),
        ([[4]], "Unknown class 4"),
        ([[]], r"Condition 0 \[\] must name 1 or more labels, each once"),
        ([["red cube", 0]], r"Condition 0 \['red cube', 0\] must name 1 or more labels, each once"),
        ([["red cube"], ["gray cube"], ["blue sphere"]], "Got 3 conditions for batch_size 2"),
        (torch.tensor([[0, 2, 0, 0]]), r"hold only 0 and 1; got shape \(1, 4\)"),
        (torch.ones(2, 5), r"shape \(batch_size, 4\) and hold only 0 and 1; got shape \(2, 5\)"),
    ],
)
def test_bad_conditions_are_refused(class_labels, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline()(class_labels=class_labels, batch_size=2, num_inference_steps=2)
