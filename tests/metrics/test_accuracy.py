"""Conditional accuracy, single-label and i-CLEVR's multi-label rule, against hand-worked cases."""

import pytest
import torch

from ddpm_hf.metrics import multi_label_accuracy, multi_label_accuracy_by_count, single_label_accuracy


def test_single_label_accuracy_is_the_argmax_hit_rate():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.1, 3.0], [1.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    assert single_label_accuracy(logits, torch.tensor([0, 2, 0, 2])) == 0.75
    with pytest.raises(ValueError, match="4 predictions for 3"):
        single_label_accuracy(logits, torch.tensor([0, 1, 2]))


def test_multi_label_accuracy_takes_the_top_k_of_each_image():
    # image 1 asks for labels {0, 3}: the top-2 scores are labels 3 and 1 -> 1 hit of 2
    # image 2 asks for {2}: top-1 is label 2 -> 1 hit of 1
    # image 3 asks for {0, 1, 2}: top-3 are 0, 1, 4 -> 2 hits of 3
    logits = torch.tensor([[0.5, 0.8, 0.1, 0.9, 0.0], [0.0, 0.1, 0.7, 0.2, 0.3], [0.9, 0.8, 0.1, 0.0, 0.85]])
    requested = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [1, 1, 1, 0, 0]])
    assert multi_label_accuracy(logits, requested) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="at least one requested label"):
        multi_label_accuracy(logits, torch.zeros_like(requested))


def test_multi_label_accuracy_by_count_splits_the_same_hits():
    # the three images above plus a fourth asking for {1, 4} whose top-2 are 1 and 4 -> 2 hits of 2
    logits = torch.tensor(
        [[0.5, 0.8, 0.1, 0.9, 0.0], [0.0, 0.1, 0.7, 0.2, 0.3], [0.9, 0.8, 0.1, 0.0, 0.85], [0.0, 0.9, 0.0, 0.1, 0.8]]
    )
    requested = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [1, 1, 1, 0, 0], [0, 1, 0, 0, 1]])
    split = multi_label_accuracy_by_count(logits, requested)
    assert list(split) == [1, 2, 3]
    assert split[1] == {"accuracy": 1.0, "images": 1}
    assert split[2] == {"accuracy": pytest.approx(3 / 4), "images": 2}
    assert split[3] == {"accuracy": pytest.approx(2 / 3), "images": 1}
    with pytest.raises(ValueError, match="must have one shape"):
        multi_label_accuracy_by_count(logits, requested[:, :4])
