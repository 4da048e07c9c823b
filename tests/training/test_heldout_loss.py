"""The held-out noise loss: the training objective at noise and timesteps drawn once, against a float64 computation
written here; the same figure whenever it is recomputed for the same weights, whatever the batch size."""

import numpy as np
import pytest
import torch

from ddpm_hf import ExtendedDDPMScheduler, make_unet
from ddpm_hf.training import HeldoutLoss, append_heldout_log, keep_heldout_log, read_heldout_log

T = 50


def tiny_setup(seed=0, prediction_type="epsilon"):
    torch.manual_seed(seed)
    unet = make_unet("tiny", 8, 1, 3).eval()
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, prediction_type=prediction_type)
    clean = torch.rand(13, 1, 8, 8, generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1
    labels = torch.arange(13) % 3
    return unet, scheduler, clean, labels


def float64_reference(unet, clean, labels, noise, timesteps):
    """The epsilon loss with the forward process and the network in float64: betas linear 1e-4..0.02 over T steps."""
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    alphas_cumprod = torch.from_numpy(np.cumprod(1 - betas))
    abar = alphas_cumprod[timesteps][:, None, None, None]
    x0, eps = clean.double(), noise.double()
    noisy = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    unet64 = make_unet("tiny", 8, 1, 3).double().eval()
    unet64.load_state_dict(unet.state_dict())
    with torch.no_grad():
        output = unet64(noisy, timesteps, class_labels=labels).sample
    return ((output - eps) ** 2).mean().item()


def test_the_held_out_loss_is_the_float64_objective_at_its_fixed_draws():
    unet, scheduler, clean, labels = tiny_setup()
    heldout = HeldoutLoss(clean, {"class_labels": labels}, T, seed=7, batch_size=4)
    generator = torch.Generator().manual_seed(7)  # the documented draws: eps first, then t, from one CPU generator
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, T, (13,), generator=generator)
    assert torch.equal(heldout.noise, noise) and torch.equal(heldout.timesteps, timesteps)
    expected = float64_reference(unet, clean, labels, noise, timesteps)
    # float32 network and forward process against float64: relative rounding of order 1e-6 per operation; the loss is
    # a mean of squares of O(1) values over 832 elements
    assert heldout(unet, scheduler) == pytest.approx(expected, rel=1e-4)


def test_the_same_weights_give_the_same_figure_at_any_batch_size_and_call():
    unet, scheduler, clean, labels = tiny_setup()
    first = HeldoutLoss(clean, {"class_labels": labels}, T, seed=3, batch_size=5)
    again = HeldoutLoss(clean, {"class_labels": labels}, T, seed=3, batch_size=5)
    assert first(unet, scheduler) == first(unet, scheduler) == again(unet, scheduler)
    one_batch = HeldoutLoss(clean, {"class_labels": labels}, T, seed=3, batch_size=256)
    assert one_batch(unet, scheduler) == pytest.approx(first(unet, scheduler), rel=1e-6)  # only the summation order
    other_draws = HeldoutLoss(clean, {"class_labels": labels}, T, seed=4, batch_size=5)
    assert other_draws(unet, scheduler) != first(unet, scheduler)


def test_scoring_leaves_the_model_in_training_mode_when_it_was_and_takes_no_gradient():
    unet, scheduler, clean, labels = tiny_setup()
    unet.train()
    heldout = HeldoutLoss(clean, {"class_labels": labels}, T, seed=0)
    heldout(unet, scheduler)
    assert unet.training and all(parameter.grad is None for parameter in unet.parameters())


@pytest.mark.parametrize("prediction_type", ["x0", "mean"])
def test_other_prediction_types_use_the_training_target_and_weighting(prediction_type):
    from ddpm_hf.training import diffusion_loss_at

    unet, scheduler, clean, labels = tiny_setup(prediction_type=prediction_type)
    heldout = HeldoutLoss(clean, {"class_labels": labels}, T, seed=2, batch_size=13)
    with torch.no_grad():
        direct = diffusion_loss_at(unet, scheduler, clean, heldout.noise, heldout.timesteps, class_labels=labels)
    assert heldout(unet, scheduler) == pytest.approx(direct.item(), rel=1e-6)


def test_an_empty_held_out_set_is_refused():
    with pytest.raises(ValueError, match="no samples"):
        HeldoutLoss(torch.zeros(0, 1, 8, 8), {}, T, seed=0)


def test_resuming_drops_the_records_of_steps_that_run_again(tmp_path):
    for step in (10, 20, 30):
        append_heldout_log(str(tmp_path), {"epoch": step // 10 - 1, "step": step, "heldout_loss": 1 / step})
    assert [record["step"] for record in keep_heldout_log(str(tmp_path), 20)] == [10, 20]
    assert [record["step"] for record in read_heldout_log(str(tmp_path))] == [10, 20]
    assert keep_heldout_log(str(tmp_path), 0) == [] and read_heldout_log(str(tmp_path / "none")) == []
