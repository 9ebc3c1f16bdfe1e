"""`diffill soak`'s verdict on its samples: flat, or which figure grew."""

from __future__ import annotations

from diffill.evaluation.soak import Sample, verdict


def _run(
    minutes: int, rss, tasks=lambda m: 3, p95=lambda m: 20.0, handling=lambda m: 1
) -> list[Sample]:
    return [
        Sample(m * 60.0, rss(m), rss(m) * 1.3, 9, tasks(m), handling(m), 50, 0.0, 10.0, p95(m))
        for m in range(minutes + 1)
    ]


def test_a_flat_run_passes_against_minute_ten():
    result = verdict(_run(30, rss=lambda m: 200 + (m % 3)))
    assert result["reference_minute"] == 10.0
    assert result["rss_flat"] and result["no_tasks_growth"] and result["p95_stable"]


def test_growth_is_named():
    result = verdict(
        _run(30, rss=lambda m: 200 + 5 * m, tasks=lambda m: 3 + m // 12, handling=lambda m: m)
    )
    assert not result["rss_flat"] and not result["no_tasks_growth"]
    assert not result["no_handling_growth"]
    assert result["no_threads_growth"]


def test_a_short_run_compares_its_halves():
    result = verdict(_run(4, rss=lambda m: 200, p95=lambda m: 20.0 * (1 + m)))
    assert result["reference_minute"] == 2.0 and not result["p95_stable"]
