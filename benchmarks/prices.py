"""AWS on-demand list prices for the cost model, and the arithmetic from counts to dollars.

Every price is the on-demand list price in us-east-1 (N. Virginia) as published by
AWS on the page named beside it, as the author knew them on :data:`PRICES_DATE`.
They were not fetched: the machine that wrote this has no network beyond
127.0.0.1. Re-check them on those pages before relying on a dollar figure;
the request and unit counts the figures come from are measured and do not change
with prices. Free tiers (1 M SQS requests, 1 M Lambda requests and 400,000 GB-s a
month) are left out: at the volumes that matter they round to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: When the prices below were stated (not fetched: see the module docstring).
PRICES_DATE = "2026-12-05"
#: Region of every price below.
PRICES_REGION = "us-east-1"

#: DynamoDB on-demand, $ per million read request units (one 4 KB strongly consistent
#: read; half a unit eventually consistent). https://aws.amazon.com/dynamodb/pricing/on-demand/,
#: as published by AWS after its 2024-11-01 cut of on-demand prices by half; us-east-1.
DYNAMODB_READ_PER_MILLION = 0.125
#: DynamoDB on-demand, $ per million write request units (one write of up to 1 KB). Same page.
DYNAMODB_WRITE_PER_MILLION = 0.625
#: DynamoDB Streams, $ per million streams read request units (one GetRecords call), for
#: readers other than a Lambda trigger ($0.02 per 100,000). GetRecords made by Lambda's
#: event source mapping for a DynamoDB trigger are not charged. Same page.
STREAMS_READ_PER_MILLION = 0.20
#: SQS standard queues, $ per million requests (first 1 M a month free, then this up to
#: 100 B). A request is one API action with up to 64 KB of payload; each further 64 KB
#: chunk of payload is billed as another request. https://aws.amazon.com/sqs/pricing/
SQS_STANDARD_PER_MILLION = 0.40
#: Lambda, $ per million requests (invocations). https://aws.amazon.com/lambda/pricing/
LAMBDA_PER_MILLION_REQUESTS = 0.20
#: Lambda on x86, $ per GB-second of duration (first 6 billion GB-s a month tier;
#: duration is billed in 1 ms steps). Same page.
LAMBDA_PER_GB_SECOND = 0.0000166667
#: S3 Standard, $ per 1,000 PUT, COPY, POST and LIST requests. https://aws.amazon.com/s3/pricing/
S3_PUT_PER_THOUSAND = 0.005
#: S3 Standard, $ per 1,000 GET, SELECT and all other requests (DELETE is free). Same page.
S3_GET_PER_THOUSAND = 0.0004

PRICES: dict[str, float] = {
    "DynamoDB read request units, $ per million": DYNAMODB_READ_PER_MILLION,
    "DynamoDB write request units, $ per million": DYNAMODB_WRITE_PER_MILLION,
    "DynamoDB Streams read request units (not Lambda), $ per million": STREAMS_READ_PER_MILLION,
    "SQS standard requests (per 64 KB chunk), $ per million": SQS_STANDARD_PER_MILLION,
    "Lambda requests, $ per million": LAMBDA_PER_MILLION_REQUESTS,
    "Lambda duration (x86), $ per GB-second": LAMBDA_PER_GB_SECOND,
    "S3 PUT/COPY/POST/LIST, $ per 1,000": S3_PUT_PER_THOUSAND,
    "S3 GET and others, $ per 1,000": S3_GET_PER_THOUSAND,
}


@dataclass(frozen=True)
class Usage:
    """What a workload costs AWS, per 1,000 changes (the billed units, not time-based ones)."""

    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    #: SQS requests as billed (64 KB chunks), receives that found nothing left out.
    sqs_requests: float = 0.0
    lambda_invocations: float = 0.0
    lambda_gb_seconds: float = 0.0
    s3_put_requests: float = 0.0
    s3_get_requests: float = 0.0


def dollars_per_million_changes(usage: Usage) -> dict[str, float]:
    """$ per million changes by service, and ``total``, from usage per 1,000 changes."""
    per_million = 1000.0  # usage is per 1,000 changes
    out = {
        "dynamodb": per_million
        * (
            usage.dynamodb_read_units * DYNAMODB_READ_PER_MILLION
            + usage.dynamodb_write_units * DYNAMODB_WRITE_PER_MILLION
        )
        / 1e6,
        "sqs": per_million * usage.sqs_requests * SQS_STANDARD_PER_MILLION / 1e6,
        "lambda": per_million
        * (
            usage.lambda_invocations * LAMBDA_PER_MILLION_REQUESTS / 1e6
            + usage.lambda_gb_seconds * LAMBDA_PER_GB_SECOND
        ),
        "s3": per_million
        * (
            usage.s3_put_requests * S3_PUT_PER_THOUSAND
            + usage.s3_get_requests * S3_GET_PER_THOUSAND
        )
        / 1000,
    }
    out["total"] = sum(out.values())
    return out


def idle_receives_per_month(wait_time_seconds: float, polling_interval: float) -> float:
    """Empty ReceiveMessage calls one idle worker makes on its queue in 30 days.

    Not a per-change cost: every worker pays it whatever the load, in both designs.
    """
    return 30 * 86400 / max(wait_time_seconds + polling_interval, 0.001)


def per_thousand(counts: Mapping[str, float], changes: int) -> dict[str, float]:
    """Counts over ``changes`` changes, scaled to 1,000 changes."""
    return {k: v * 1000.0 / changes for k, v in counts.items()} if changes else {}
