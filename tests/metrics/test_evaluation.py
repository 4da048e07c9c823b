"""The scoring pieces of evaluate.py: the halves, one row's scores against independent formulas, samples.npz."""

import numpy as np
import torch

from ddpm_hf.metrics import frechet_distance, inception_score, kernel_distance
from ddpm_hf.metrics.evaluation import keep_samples, real_floor, repeat_to, save_samples, score_samples, split_halves


def test_halves_are_disjoint_cover_everything_and_follow_the_seed():
    half_a, half_b = split_halves(11, seed=3)
    assert len(half_a) == 5 and len(half_b) == 6
    assert sorted(torch.cat([half_a, half_b]).tolist()) == list(range(11))
    assert torch.equal(split_halves(11, seed=3)[0], half_a) and not torch.equal(split_halves(11, seed=4)[0], half_a)


def test_requested_labels_repeat_in_turn():
    assert repeat_to(torch.tensor([0, 1, 2]), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert repeat_to(torch.tensor([[1, 0], [0, 1]]), 3).tolist() == [[1, 0], [0, 1], [1, 0]]


def test_scores_of_a_row_and_the_floor():
    generator = torch.Generator().manual_seed(0)
    features_a, features = torch.randn(40, 4, generator=generator), torch.randn(30, 4, generator=generator) + 0.5
    logits = torch.randn(30, 3, generator=generator)
    requested = torch.tensor([0, 1, 2] * 10)
    judge_logits = torch.nn.functional.one_hot(requested, 3).float()
    judge_logits[:6] = judge_logits[:6].roll(1, dims=1)  # 6 of 30 judged as another class
    scores = score_samples(features_a, features, logits, judge_logits, requested)
    assert scores["fid"] == frechet_distance(features_a, features)
    assert (scores["kid"], scores["kid_std"]) == kernel_distance(features_a, features)
    assert scores["inception_score"] == inception_score(logits)[0]
    assert scores["accuracy"] == 24 / 30 and scores["accuracy_by_label_count"] is None
    unjudged = score_samples(features_a, features, logits)
    assert unjudged["accuracy"] is None and unjudged["fid"] == scores["fid"]
    # multi-hot conditions, by i-CLEVR's rule (the k best-scored labels of an image asked for k): also by number of
    # labels asked for
    wanted = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0]]).float()
    judged = torch.where(wanted > 0, 5.0, -5.0)
    judged[3, 0], judged[3, 3] = -5.0, 5.0  # the 3-label image shows a label not asked for instead of one asked for
    multi = score_samples(features_a[:4], features[:4], logits[:4], judged, wanted)
    assert multi["accuracy"] == 7 / 8
    by_count = {count: (row["accuracy"], row["images"]) for count, row in multi["accuracy_by_label_count"].items()}
    assert by_count == {1: (1.0, 1), 2: (1.0, 2), 3: (2 / 3, 1)}
    floor = real_floor({"features_a": features_a, "features_b": features, "logits_b": logits}, judge_logits, requested)
    assert floor == {"fid": scores["fid"], "kid": scores["kid"], "inception_score": scores["inception_score"],
                     "accuracy": 24 / 30}  # fmt: skip


def test_kept_samples_are_uint8_with_labels_omega_and_row(tmp_path):
    saved = {"images": [], "labels": [], "omega": [], "row": []}
    keep_samples(saved, torch.full((2, 1, 4, 4), 0.5), torch.tensor([[1, 0, 1], [0, 1, 0]]), 2.0, row=0)
    keep_samples(saved, torch.ones(3, 1, 4, 4), None, None, row=1)  # unconditional: labels -1, omega NaN
    save_samples(saved, tmp_path / "samples.npz")
    arrays = np.load(tmp_path / "samples.npz")
    assert arrays["images"].shape == (5, 4, 4) and arrays["images"].dtype == np.uint8
    assert arrays["images"][0, 0, 0] == 128 and arrays["images"][2, 0, 0] == 255
    np.testing.assert_array_equal(arrays["labels"], [[1, 0, 1], [0, 1, 0], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(arrays["omega"], [2.0, 2.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(arrays["row"], [0, 0, 1, 1, 1])
