"""Table tests for `plan_batches`: every split keeps order, covers each input once and respects both limits."""

from __future__ import annotations

import pytest

from shared.embedders.batching import plan_batches


def as_lists(batches: list[range]) -> list[list[int]]:
    return [list(b) for b in batches]


@pytest.mark.parametrize(
    ("counts", "max_inputs", "max_tokens", "expected"),
    [
        pytest.param([], 10, 100, [], id="no inputs, no batches"),
        pytest.param([5], 10, 100, [[0]], id="one input"),
        pytest.param([1, 1, 1, 1, 1], 2, 100, [[0, 1], [2, 3], [4]], id="input count limit"),
        pytest.param([40, 40, 40, 40], 10, 100, [[0, 1], [2, 3]], id="token limit"),
        pytest.param([50, 50, 50], 10, 100, [[0, 1], [2]], id="exactly at the token limit fits"),
        pytest.param([60, 50, 30, 10], 10, 100, [[0], [1, 2, 3]], id="order kept, no reordering to pack"),
        pytest.param([100, 1, 100], 10, 100, [[0], [1], [2]], id="inputs as big as the budget go alone"),
        pytest.param([10, 10, 10, 90], 3, 100, [[0, 1, 2], [3]], id="both limits: inputs first"),
        pytest.param([0, 0, 0], 2, 1, [[0, 1], [2]], id="zero-token inputs still count as inputs"),
        pytest.param([1] * 5000, 2048, 300_000, [list(range(0, 2048)), list(range(2048, 4096)),
                                                 list(range(4096, 5000))], id="openai-sized request"),
    ],
)
def test_plan_batches_splits_in_order_within_both_limits(
    counts: list[int], max_inputs: int, max_tokens: int, expected: list[list[int]]
) -> None:
    batches = plan_batches(counts, max_inputs=max_inputs, max_tokens=max_tokens)
    assert as_lists(batches) == expected
    assert [i for b in batches for i in b] == list(range(len(counts)))
    for batch in batches:
        assert len(batch) <= max_inputs
        assert sum(counts[i] for i in batch) <= max_tokens


@pytest.mark.parametrize(
    ("counts", "max_inputs", "max_tokens", "message"),
    [
        pytest.param([10, 101, 10], 10, 100, "input 1 has 101 tokens", id="an input over the whole budget"),
        pytest.param([10, -1], 10, 100, "input 1 has a negative token count", id="a negative count"),
        pytest.param([1], 0, 100, "limits must be at least 1", id="no inputs allowed"),
        pytest.param([1], 10, 0, "limits must be at least 1", id="no tokens allowed"),
    ],
)
def test_plan_batches_refuses_inputs_it_cannot_place(
    counts: list[int], max_inputs: int, max_tokens: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_batches(counts, max_inputs=max_inputs, max_tokens=max_tokens)
