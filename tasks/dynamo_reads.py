"""The worker's DynamoDB client for reads: a read's answer is ``json.loads`` of its body.

botocore turns a response into Python by walking the operation's output shape
member by member, every attribute of every item: in a profile of the worker
(``chromasync bench --profile``, BENCHMARKS.md "CPU per embedding") that walk was
a third of the CPU its table reads cost. For Query, GetItem, BatchGetItem and Scan
the JSON on the wire already is what botocore returns (typed attribute values,
``{"S": "..."}``, ``{"N": "1"}``, lists, maps, counts, keys) except for binary
values, which botocore base64-decodes: a body that may hold one (a ``"B"`` or
``"BS"`` key) goes through botocore's own parser, as does every error.

Parameter validation is off for this client as well: every request it sends is
built by :class:`tasks.sources.TableReader`, the same few shapes each time, and
DynamoDB still refuses a malformed one.
"""

from __future__ import annotations

import re
from typing import Any, Final

from botocore.parsers import JSONParser, ResponseParser, ResponseParserFactory

from chromasync.core.config import AwsSettings

#: Output shapes whose wire JSON is the parsed answer (no blob, no timestamp).
PLAIN_OUTPUTS: Final = frozenset(
    {"QueryOutput", "GetItemOutput", "BatchGetItemOutput", "ScanOutput"}
)
#: A binary attribute value (or a key of that name): botocore's parser decodes those.
_MAY_HOLD_BINARY: Final = re.compile(rb'"BS?"\s*:')


class _ReadParser(JSONParser):
    """botocore's parser of the json protocol, minus the shape walk for plain reads."""

    def _handle_json_body(self, raw_body: bytes, shape: Any) -> Any:
        if (
            shape is not None
            and shape.name in PLAIN_OUTPUTS
            and not _MAY_HOLD_BINARY.search(raw_body)
        ):
            return self._parse_body_as_json(raw_body)
        return super()._handle_json_body(raw_body, shape)


class ReadParserFactory(ResponseParserFactory):
    """Gives :class:`_ReadParser` for the json protocol (DynamoDB's), botocore's otherwise."""

    def create_parser(self, protocol_name: str) -> ResponseParser:
        if protocol_name == "json":
            return _ReadParser(**self._defaults)
        return super().create_parser(protocol_name)


def read_client(aws: AwsSettings) -> Any:
    """The worker's client for its table reads.

    :class:`tasks.dynamo_direct.DirectReadClient` (signed HTTP, no per-call
    botocore machinery), unless a proxy is configured for the endpoint: then a
    botocore client of its own session whose reads skip the shape walk.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    from tasks.dynamo_direct import DirectReadClient

    core = botocore.session.get_session()
    core.register_component("response_parser_factory", ReadParserFactory())
    session = boto3.session.Session(botocore_session=core)
    client = session.client(
        "dynamodb", config=Config(parameter_validation=False), **aws.client_kwargs()
    )
    if _proxied(client.meta.endpoint_url):
        return client
    if aws.access_key_id and aws.secret_access_key:  # named in the environment
        from botocore.credentials import Credentials

        credentials = Credentials(aws.access_key_id, aws.secret_access_key, aws.session_token)
    else:  # the chain: profile, container or instance role (refreshed as they expire)
        credentials = session.get_credentials()
    return DirectReadClient(client, credentials)


def _proxied(endpoint_url: str) -> bool:
    """Whether the environment sends requests for this endpoint through a proxy."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    url = urlsplit(endpoint_url)
    return bool(url.scheme in getproxies() and not proxy_bypass(url.hostname or ""))
