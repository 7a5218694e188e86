"""The AWS cost model's arithmetic and table shape (benchmarks/prices.py, benchmarks/cost.py).

The counts come from a real moto server (tests/test_motoserver.py checks the counter);
here only what is done with them: prices per million changes, the Lambda settings read
from the deployment template, and a table with one row per kind and design.
"""

from __future__ import annotations

import pytest

from benchmarks.cost import KindCost, LambdaSettings, cost_table
from benchmarks.prices import (
    DYNAMODB_READ_PER_MILLION,
    SQS_STANDARD_PER_MILLION,
    Usage,
    dollars_per_million_changes,
    idle_receives_per_month,
)


def test_dollars_per_million_changes_from_usage_per_thousand() -> None:
    usage = Usage(dynamodb_read_units=1000, sqs_requests=3000, lambda_invocations=1)
    dollars = dollars_per_million_changes(usage)
    # A million changes: a million read units and three million requests.
    assert dollars["dynamodb"] == pytest.approx(DYNAMODB_READ_PER_MILLION)
    assert dollars["sqs"] == pytest.approx(3 * SQS_STANDARD_PER_MILLION)
    assert dollars["lambda"] == pytest.approx(1000 * 0.20 / 1e6)
    assert dollars["total"] == pytest.approx(sum(v for k, v in dollars.items() if k != "total"))


def test_idle_receives_follow_the_long_poll() -> None:
    assert idle_receives_per_month(20, 0) == pytest.approx(30 * 86400 / 20)


def test_lambda_settings_come_from_the_deployment_template() -> None:
    lam = LambdaSettings.from_cloudformation()
    assert lam.batch_size >= 1 and lam.memory_mb >= 128


def test_cost_table_has_a_row_per_kind_and_design_with_the_ratio() -> None:
    ours = KindCost("label", "chromasync", 1000, 0.1, usage=Usage(dynamodb_read_units=1000))
    theirs = KindCost("label", "per-message", 300, 1.0, usage=Usage(dynamodb_read_units=4000))
    table = cost_table({"kinds": [ours.to_json(), theirs.to_json()]})
    rows = table.splitlines()
    assert len(rows) == 4 and rows[2].startswith("| label | chromasync | 1,000 |")
    assert "4.0 × cheaper" in rows[2]
