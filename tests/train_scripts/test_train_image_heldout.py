"""train_image.py's held-out noise loss and best model: one record per epoch, best/ the weights of the lowest
held-out loss (recomputed here from the folder), lower than the initial weights', kept by a resumed run that loses."""

import json
import shutil
import sys
from pathlib import Path

import pytest
from accelerate.utils import set_seed

from ddpm_hf import DDPMCFGPipeline
from ddpm_hf.data import HeldoutSettings, ImageDataSettings, load_training_images, split_off_heldout
from ddpm_hf.training import HeldoutLoss

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "train_scripts"))
import train_image  # noqa: E402
from test_train_image import TINY  # noqa: E402

# 90 training images (5 steps of 16 per epoch), 3 epochs; 64 of the 1,707 held-out images scored
HELDOUT = [
    *TINY, "--train_batch_size", "16", "--max_train_steps", "15", "--checkpointing_steps", "5",
    "--validation_fraction", "0.95", "--validation_images", "64",
]  # fmt: skip


def heldout_loss_of(args, unet):
    """The held-out loss of `unet`, from a held-out set and draws rebuilt here from the run's flags."""
    data = load_training_images(ImageDataSettings.from_flags(args))
    heldout = split_off_heldout(data, HeldoutSettings.from_flags(args))
    clean, kwargs = heldout.model_inputs("cpu")
    scheduler = DDPMCFGPipeline.from_pretrained(args.output_dir).scheduler
    return HeldoutLoss(clean, kwargs, args.num_train_timesteps, args.seed)(unet, scheduler), data


@pytest.fixture(scope="module")
def heldout_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("heldout") / "run"
    args = train_image.parse_args(["--dataset_name", "digits", *HELDOUT, "--output_dir", str(output_dir)])
    train_image.main(args)
    return args, output_dir


def test_each_epoch_has_a_train_and_held_out_loss_and_best_is_the_lowest(heldout_run):
    args, output_dir = heldout_run
    heldout = json.loads((output_dir / "metrics.json").read_text())["heldout"]
    assert heldout["images"] == 64 and heldout["weights"] == "ema" and heldout["seconds"] >= 0
    assert "0.95 of the training images" in heldout["source"]
    records = heldout["per_epoch"]
    assert [(record["epoch"], record["step"]) for record in records] == [(0, 5), (1, 10), (2, 15)]
    losses = [json.loads(line) for line in (output_dir / "losses.jsonl").read_text().splitlines()]
    assert records[0]["train_loss"] == pytest.approx(sum(row["loss"] for row in losses[:5]) / 5, rel=1e-12)
    lowest = min(records, key=lambda record: record["heldout_loss"])
    assert heldout["best"] == {key: lowest[key] for key in ("epoch", "step", "heldout_loss")}
    assert json.loads((output_dir / "best" / "metrics.json").read_text())["heldout"]["best"] == heldout["best"]
    assert "lowest held-out noise loss" in (output_dir / "best" / "README.md").read_text()


def test_best_loads_and_holds_the_weights_of_its_epoch(heldout_run):
    args, output_dir = heldout_run
    best = DDPMCFGPipeline.from_pretrained(output_dir / "best")
    recomputed, _ = heldout_loss_of(args, best.unet)
    recorded = json.loads((output_dir / "metrics.json").read_text())["heldout"]["best"]["heldout_loss"]
    assert recomputed == pytest.approx(recorded, rel=1e-6)  # the same weights and draws; only the device's rounding


def test_training_lowers_the_held_out_loss_below_the_initial_weights(heldout_run):
    args, output_dir = heldout_run
    data = load_training_images(ImageDataSettings.from_flags(args))
    split_off_heldout(data, HeldoutSettings.from_flags(args))
    set_seed(args.seed)  # as the script does before building the model
    initial, _ = train_image.build_model(args, data)
    initial_loss, _ = heldout_loss_of(args, initial.eval())
    final = json.loads((output_dir / "metrics.json").read_text())["heldout"]["per_epoch"][-1]["heldout_loss"]
    assert final < 0.8 * initial_loss


def test_a_resumed_run_keeps_a_better_best_and_scores_the_epochs_it_runs_again(heldout_run, tmp_path):
    args, finished = heldout_run
    output_dir = tmp_path / "run"
    shutil.copytree(finished, output_dir)
    original = json.loads((finished / "metrics.json").read_text())["heldout"]
    better = {"epoch": 1, "step": 10, "heldout_loss": 1e-9}  # a best/ the resumed run cannot beat
    metrics = json.loads((output_dir / "best" / "metrics.json").read_text())
    metrics["heldout"]["best"] = better
    (output_dir / "best" / "metrics.json").write_text(json.dumps(metrics))
    weights = (output_dir / "best" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    argv = ["--dataset_name", "digits", *HELDOUT, "--output_dir", str(output_dir), "--resume_from_checkpoint"]
    train_image.main(train_image.parse_args([*argv, str(output_dir / "checkpoints" / "checkpoint-10")]))
    resumed = json.loads((output_dir / "metrics.json").read_text())["heldout"]
    assert [record["step"] for record in resumed["per_epoch"]] == [5, 10, 15]  # step 15 scored again, once
    assert resumed["per_epoch"][-1]["heldout_loss"] == pytest.approx(
        original["per_epoch"][-1]["heldout_loss"], rel=1e-6
    )  # the resumed run repeats the original's steps
    assert resumed["best"] == better
    assert (output_dir / "best" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == weights


def test_no_held_out_set_means_no_record_and_no_best(tmp_path):
    output_dir = tmp_path / "run"
    train_image.main(train_image.parse_args(["--dataset_name", "digits", *TINY, "--output_dir", str(output_dir)]))
    assert json.loads((output_dir / "metrics.json").read_text())["heldout"] is None
    assert not (output_dir / "best").exists() and not (output_dir / "heldout.jsonl").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--validation_fraction", "0.1", "--validation_split", "test"], "give one of them"),
        (["--validation_fraction", "1"], "--validation_fraction"),
        (["--validation_images", "0"], "--validation_images"),
    ],
)
def test_contradicting_held_out_flags_are_refused_when_parsed(tmp_path, flags, message, capsys):
    argv = ["--dataset_name", "digits", *TINY, "--output_dir", str(tmp_path / "run"), *flags]
    with pytest.raises((ValueError, SystemExit)) as raised:
        train_image.parse_args(argv)
    assert message in str(raised.value) + capsys.readouterr().err
    assert not (tmp_path / "run").exists()
