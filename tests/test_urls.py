"""The one URL redactor: a password never reaches a log, everything else stays readable."""

from __future__ import annotations

import pytest

from chromasync.core.urls import UNPARSEABLE, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@cache:6379/1", "redis://:***@cache:6379/1"),
        ("rediss://user:hunter2@cache:6380/0", "rediss://user:***@cache:6380/0"),
        ("redis://user@cache:6379", "redis://user@cache:6379"),
        ("redis://user:p%40ss@cache", "redis://user:***@cache"),
        ("redis://:a:b@c@cache:6379", "redis://:***@cache:6379"),
        ("dynamodb://chromasync-locks", "dynamodb://chromasync-locks"),
        ("memory://", "memory://"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_shows_no_text_of_an_unparseable_url() -> None:
    assert redact_url("redis://:hunter2@[::1") == UNPARSEABLE
