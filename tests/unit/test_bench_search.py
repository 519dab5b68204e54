"""The search benchmark's arithmetic: nearest-rank percentiles and recall@k."""

import pytest

from bench.search import percentile, recall_at_k


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([3.0], 50, 3.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
    ([float(i) for i in range(1, 101)], 99, 99.0),
    ([float(i) for i in range(1, 101)], 100, 100.0),
    ([5.0, 1.0, 3.0], 0, 1.0),
])
def test_percentile_is_the_nearest_rank_of_the_sorted_values(values, q, expected):
    assert percentile(values, q) == expected


@pytest.mark.parametrize(("approx", "exact", "k", "expected"), [
    ([[1, 2, 3]], [[1, 2, 3]], 3, 1.0),
    ([[3, 2, 1]], [[1, 2, 3]], 3, 1.0),  # order inside the top k does not matter
    ([[1, 2, 9]], [[1, 2, 3]], 3, 2 / 3),
    ([[1, 2], [7, 8]], [[1, 2], [7, 9]], 2, 0.75),  # mean over queries
    ([[1, 2, 3, 4]], [[1, 2, 5, 4]], 2, 1.0),  # only the first k of each count
    ([[1]], [[1]], 10, 1.0),  # fewer than k exact results (a narrow filter)
    ([[], [1]], [[], [1]], 10, 1.0),  # a query with no exact result is skipped
])
def test_recall_at_k_is_the_mean_share_of_the_exact_top_k_found(approx, exact, k, expected):
    assert recall_at_k(approx, exact, k) == pytest.approx(expected)
