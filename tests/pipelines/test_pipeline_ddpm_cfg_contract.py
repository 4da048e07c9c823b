"""What DDPMCFGPipeline checks where its inputs enter: class names (id2label) against the U-Net they describe, the
U-Net's image size and outputs, and callbacks that break diffusers' callback_on_step_end contract."""

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, UNet2DModel

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

T = 20
NAMES = {0: "zero", 1: "one", 2: "two"}


def tiny_unet(num_classes=3, multi_label=False, **config_changes):
    """The tiny preset's U-Net, rebuilt with `config_changes` and the same weights (seed 0)."""
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 1, num_classes, multi_label=multi_label).eval()
    if not config_changes:
        return unet
    config = {key: value for key, value in unet.config.items() if not key.startswith("_")}
    changed = type(unet).from_config({**config, **config_changes}).eval()
    changed.load_state_dict(unet.state_dict())
    return changed


def tiny_pipeline(unet=None, id2label=NAMES):
    pipe = DDPMCFGPipeline(
        unet=unet or tiny_unet(), scheduler=ExtendedDDPMScheduler(num_train_timesteps=T), id2label=id2label
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "num_classes, multi_label, id2label, message",
    [
        (3, False, {0: "", 1: "a", 2: "b"}, r"id2label: the name of class 0 is ''; each class needs a name"),
        (3, False, {0: "a", 1: "   ", 2: "b"}, r"the name of class 1 is '   '"),
        (3, False, {0: "a", 1: "b", 2: "a"}, r"the name 'a' is given to classes 0 and 2; each class needs its own"),
        (3, False, {0: "a", 1: None, 2: "b"}, r"the name of class 1 is None; class names are text"),
        (
            3,
            False,
            {0: "a", 1: "b"},
            r"id2label holds 2 name\(s\) and this is a U-Net of 3 classes \(num_class_embeds = 4: the classes and "
            r"the null class\): no name for id\(s\) \[2\]\. Give one name for each id 0\.\.2\.",
        ),
        (3, False, {0: "a", 1: "b", 2: "c", 3: "null"}, r"names for id\(s\) \[3\] that do not exist"),
        (3, False, {"0": "a", "1": "b", "two": "c"}, r"id2label key 'two' is not a class id; ids are 0\.\.2"),
        (3, False, {0: "a", "0": "b", 2: "c"}, r"id2label gives id 0 twice"),
        (None, False, {0: "a"}, r"names 1 class\(es\), but this is an unconditional U-Net \(num_class_embeds is None"),
        (4, True, {0: "a", 1: "b", 2: "c"}, r"a U-Net of 4 labels \(num_labels = 4\): no name for id\(s\) \[3\]"),
    ],
)
def test_id2label_is_checked_against_the_unet(num_classes, multi_label, id2label, message):
    with pytest.raises(ValueError, match=message):
        DDPMCFGPipeline(unet=tiny_unet(num_classes, multi_label), scheduler=ExtendedDDPMScheduler(), id2label=id2label)


def test_names_as_model_index_json_stores_them_load_in_id_order(tmp_path):
    # model_index.json sorts its keys as strings ("0", "1", "10", "11", "2", ...); the names come back by id
    names = {index: f"class {index}" for index in range(12)}
    tiny_pipeline(tiny_unet(12), names).save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "model_index.json").read_text())["id2label"]
    assert list(stored)[:4] == ["0", "1", "10", "11"]
    assert DDPMCFGPipeline.from_pretrained(tmp_path).id2label == names


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"0": "zero", "1": "one", "2": "zero"}, r"the name 'zero' is given to classes 0 and 2"),
        ({"0": "", "1": "one", "2": "two"}, r"the name of class 0 is ''"),
        ({"0": "zero", "1": "one"}, r"no name for id\(s\) \[2\]"),
    ],
)
def test_a_hand_edited_id2label_is_refused_on_both_loading_routes(tmp_path, edit, message):
    tiny_pipeline().save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    model_index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**model_index, "id2label": edit}))
    with pytest.raises(ValueError, match=message):
        DDPMCFGPipeline.from_pretrained(tmp_path)
    # plain diffusers runs the copy saved in the folder (what the Space does), which checks the same
    with pytest.raises(ValueError, match=message):
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)


def hand_written_loop(unet, scheduler, class_ids, shape, num_steps, seed):
    """The reverse process written out (one pass per step, no guidance): x_T, then U-Net and scheduler step."""
    gen = generator(seed)
    sample = torch.randn(shape, generator=gen)
    scheduler.set_timesteps(num_steps)
    with torch.no_grad():
        for timestep in scheduler.timesteps:
            output = unet(sample, timestep, class_labels=torch.tensor(class_ids)).sample
            sample = scheduler.step(output, timestep, sample, generator=gen).prev_sample
    return (sample / 2 + 0.5).clamp(0, 1)


def test_a_sample_size_given_as_height_and_width_samples_that_size():
    call = dict(class_labels=[0, 2], guidance_scale=1.0, num_inference_steps=4, output_type="pt")
    square = tiny_pipeline(tiny_unet())(generator=generator(1), **call).images
    square_list = tiny_pipeline(tiny_unet(sample_size=[8, 8]))(generator=generator(1), **call).images
    torch.testing.assert_close(square_list, square, rtol=0, atol=0)  # [8, 8] is the same model as 8
    wide_unet = tiny_unet(sample_size=[8, 16])
    wide = tiny_pipeline(wide_unet)(generator=generator(1), **call).images
    assert wide.shape == (2, 1, 8, 16)
    expected = hand_written_loop(wide_unet, ExtendedDDPMScheduler(num_train_timesteps=T), [0, 2], (2, 1, 8, 16), 4, 1)
    torch.testing.assert_close(wide, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sample_size": None}, r"The U-Net's sample_size is None; the pipeline needs the image size there"),
        ({"sample_size": [8, 8, 8]}, r"sample_size is \[8, 8, 8\]; .*an integer >= 1 \(square images\) or \[height"),
        (
            {"out_channels": 2},
            r"The U-Net has out_channels=2 for in_channels=1; this pipeline samples U-Nets whose out_channels equal",
        ),
    ],
)
def test_unets_the_pipeline_cannot_sample_are_refused_when_it_is_built(changes, message):
    torch.manual_seed(0)
    config = {key: value for key, value in make_unet("tiny", 8, 1, 3).config.items() if not key.startswith("_")}
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(UNet2DModel.from_config({**config, **changes}))


def test_callbacks_may_return_none_their_inputs_or_a_new_sample():
    pipe = tiny_pipeline()
    call = dict(class_labels=[1, 2], num_inference_steps=3, output_type="pt")
    plain = pipe(generator=generator(2), **call).images
    for callback in (lambda *args: None, lambda *args: {}, lambda pipe, step, timestep, kwargs: kwargs):
        images = pipe(
            generator=generator(2),
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["sample", "pred_original_sample"],
            **call,
        ).images
        torch.testing.assert_close(images, plain, rtol=0, atol=0)

    def zero_at_the_end(pipe, step_index, timestep, callback_kwargs):
        return {"sample": torch.zeros_like(callback_kwargs["sample"])} if step_index == 2 else {}

    images = pipe(generator=generator(2), callback_on_step_end=zero_at_the_end, **call).images
    assert torch.all(images == 0.5)  # x_0 = 0 is mid-grey


@pytest.mark.parametrize(
    "returns, message",
    [
        (lambda sample: "done", r"callback_on_step_end returned 'done' \(str\) at step 0; it must return a dict"),
        (lambda sample: [sample], r"returned \[tensor.*\(list\) at step 0; it must return a dict"),
        (
            lambda sample: {"latents": sample},
            r"returned the key\(s\) \['latents'\] at step 0; allowed keys are \['sample', 'pred_original_sample'\]",
        ),
        (
            lambda sample: {"sample": sample[:, :, :4]},
            r"returned a 'sample' of shape \(2, 1, 4, 8\), torch.float32, on cpu at step 0; it must have x_t's shape "
            r"\(2, 1, 8, 8\), dtype torch.float32 and device cpu",
        ),
        (lambda sample: {"sample": sample.double()}, r"'sample' of shape \(2, 1, 8, 8\), torch.float64"),
        (lambda sample: {"sample": sample.numpy()}, r"returned a 'sample' of type ndarray at step 0; it must be a"),
    ],
)
def test_a_callback_that_breaks_the_contract_is_named(returns, message):
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match=message):
        pipe(
            class_labels=[0, 1],
            num_inference_steps=3,
            callback_on_step_end=lambda pipe, step, timestep, kwargs: returns(kwargs["sample"]),
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"callback_on_step_end": 5}, r"must be a function called as callback\(pipe, .*got 5 \(int\)"),
        ({"callback_on_step_end": "print"}, r"callback_on_step_end must be a function.*got 'print' \(str\)"),
        (
            {"callback_on_step_end_tensor_inputs": "sample"},
            r"callback_on_step_end_tensor_inputs must be a list of names from \['sample', 'pred_original_sample'\], "
            r"got 'sample'",
        ),
        ({"callback_on_step_end_tensor_inputs": ["latents"]}, r"Unknown callback tensor inputs \['latents'\]"),
    ],
)
def test_bad_callback_arguments_are_refused_before_sampling(kwargs, message, record_unet_calls):
    pipe = tiny_pipeline()
    calls = record_unet_calls(pipe)
    with pytest.raises(ValueError, match=message):
        pipe(class_labels=[0], num_inference_steps=3, **kwargs)
    assert calls == []


def test_numpy_class_names_from_a_saved_npz_are_plain_text():
    # names read from an .npz are numpy strings; they are text like any other
    pipe = tiny_pipeline(id2label={index: np.str_(name) for index, name in NAMES.items()})
    assert pipe.id2label == NAMES
