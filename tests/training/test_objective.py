import pytest
import torch

from ecg2abp.errors import InputError
from ecg2abp.training.objective import head_weights, learning_rate, supervised_loss


def test_head_weights_are_the_papers_in_order_final_head_last():
    assert head_weights(4) == [0.7, 0.8, 0.9, 1.0]
    assert head_weights(1) == [1.0]
    assert head_weights(4, [0.1, 0.2, 0.3, 0.4]) == [0.1, 0.2, 0.3, 0.4]


def test_head_weights_refuse_a_count_that_does_not_match_the_heads():
    with pytest.raises(InputError, match=r"train\.deep_supervision_weights: 3 weights .* 4 heads"):
        head_weights(4, [1.0, 1.0, 1.0])


def test_supervised_loss_weights_each_head_by_its_position():
    target = torch.zeros(3)
    heads = [torch.full((3,), float(k + 1)) for k in range(4)]  # head k has MSE (k + 1)²
    loss = supervised_loss(heads, target, head_weights(4))
    assert float(loss) == pytest.approx(0.7 * 1 + 0.8 * 4 + 0.9 * 9 + 1.0 * 16)
    reversed_heads = supervised_loss(heads[::-1], target, head_weights(4))
    assert float(reversed_heads) != pytest.approx(float(loss))  # order matters


def test_cosine_schedule_falls_from_base_to_zero_and_constant_stays():
    assert learning_rate(0, 10, 0.1, "cosine") == pytest.approx(0.1)
    assert learning_rate(5, 10, 0.1, "cosine") == pytest.approx(0.05)
    assert learning_rate(10, 10, 0.1, "cosine") == pytest.approx(0.0)
    assert learning_rate(7, 10, 0.1, "constant") == 0.1
