"""Loss-versus-step figure."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_loss_curve(
    losses: list[float],
    path: str,
    title: str = "Training loss",
    smoothing: int = 50,
    heldout: list[dict] | None = None,
) -> None:
    """
    Plot the per-step loss (faint) and its running mean over `smoothing` steps, log-scaled, to `path`.

    Args:
        losses (`list[float]`): One loss value per optimisation step.
        path (`str`): Where to write the image (PNG by extension).
        title (`str`, defaults to `"Training loss"`): Figure title.
        smoothing (`int`, defaults to 50): Window of the running mean.
        heldout (`list[dict]`, *optional*): Held-out scores {"step", "heldout_loss", "train_loss"}: the held-out loss
            at each step, with the mean training loss since the previous score beside it.
    """
    losses = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(losses) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, alpha=0.3, lw=0.8, label="per step")
    if len(losses) >= smoothing > 1:
        running_mean = np.convolve(losses, np.ones(smoothing) / smoothing, mode="valid")
        ax.plot(steps[smoothing - 1 :], running_mean, lw=1.5, label=f"mean of {smoothing} steps")
    if heldout:
        steps_scored = [record["step"] for record in heldout]
        ax.plot(steps_scored, [record["train_loss"] for record in heldout], "o-", ms=3, lw=1, label="train (mean)")
        ax.plot(steps_scored, [record["heldout_loss"] for record in heldout], "s-", ms=3, lw=1, label="held-out")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
