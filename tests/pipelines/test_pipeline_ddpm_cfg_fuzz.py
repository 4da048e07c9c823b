"""Random argument combinations thrown at DDPMCFGPipeline's input checks: they either pass or raise ValueError."""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

T = 20
torch.manual_seed(0)
PIPE = DDPMCFGPipeline(
    unet=make_unet("tiny", 8, 1, 3),
    scheduler=ExtendedDDPMScheduler(num_train_timesteps=T),
    id2label={0: "a", 1: "b", 2: "c"},
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["a", "b", "pil", "np", "pt", "0", "1"]),
    st.binary(max_size=3),
)
label_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.tuples(scalars, scalars),
    st.lists(st.integers(-3, 5), max_size=4).map(torch.tensor),
    st.lists(st.integers(-3, 5), max_size=4).map(np.array),
    st.integers(-3, 5).map(torch.tensor),
    st.dictionaries(st.integers(0, 3), scalars, max_size=2),
    st.sets(st.integers(0, 3), max_size=3),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch_size=scalars, guidance_scale=scalars, num_inference_steps=scalars, output_type=scalars)
def test_check_inputs_raises_only_value_errors(batch_size, guidance_scale, num_inference_steps, output_type):
    try:
        PIPE.check_inputs(batch_size, num_inference_steps, guidance_scale, output_type)
    except ValueError:
        return
    # what is accepted is what the pipeline can run with
    assert isinstance(batch_size, int) and batch_size >= 1 and not isinstance(batch_size, bool)
    assert isinstance(num_inference_steps, int) and 1 <= num_inference_steps <= T
    assert 0 <= guidance_scale < float("inf") and output_type in ("pil", "np", "pt")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(class_labels=label_values, batch_size=st.integers(1, 6))
def test_class_labels_raise_only_value_errors_or_give_valid_ids(class_labels, batch_size):
    try:
        ids = PIPE.encode_conditions(class_labels, batch_size)
    except ValueError:
        return
    if ids is not None:
        assert ids.shape == (batch_size,) and ids.dtype == torch.long
        assert ((ids >= 0) & (ids < 3)).all()  # never the null class, never out of range


@settings(max_examples=150, deadline=None)
@given(class_labels=label_values, batch_size=st.one_of(st.none(), st.integers(-2, 4)))
def test_call_preamble_raises_only_value_errors(class_labels, batch_size):
    # num_inference_steps=0 is always refused, so only the argument handling before sampling runs (batch size
    # taken from the labels, then the checks)
    try:
        PIPE(class_labels=class_labels, batch_size=batch_size, num_inference_steps=0)
    except ValueError:
        pass
    else:
        raise AssertionError("num_inference_steps=0 was accepted")
