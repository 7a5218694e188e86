"""Settings shared by the producer and the worker, read from the environment.

Every setting has a default that works on one machine (moto on 127.0.0.1,
redis-server on 127.0.0.1:6379, Chroma directories under ``.chromasync/``).
A value that is present but wrong raises :class:`ConfigError` naming the
variable, so an operator knows exactly what to fix.

This module must stay importable without chromadb or the worker code: the
producer ships as a small Lambda zip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlparse

from chromasync.core.entities import REGISTRY, CollectionRole
from chromasync.core.sinks import CHROMA, DEFAULT_SINKS, SINKS

#: Default DynamoDB table holding the receipt entities.
DEFAULT_TABLE = "ReceiptsTable"
#: Prefix put in front of every SQS queue name (``chromasync-lines``...).
DEFAULT_QUEUE_PREFIX = "chromasync-"
#: The Chroma collections kept in step with the table, by role.
DEFAULT_COLLECTIONS = ("lines", "words")
#: Default region for every AWS client; moto accepts any.
DEFAULT_REGION = "us-east-1"
#: Seconds a received task stays hidden from other workers (a queue attribute,
#: set by ``chromasync provision``); longer than any batch takes.
DEFAULT_VISIBILITY_TIMEOUT = 300
#: Most changes packed into one task message.
DEFAULT_MAX_CHANGES_PER_TASK = 500


#: What may appear in an SQS queue name (and so in a prefix or collection).
_SQS_NAME_PART = re.compile(r"[A-Za-z0-9_-]+")


class UnknownCollection(ValueError):
    """A target (collection or sink table) that the configuration does not name."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} must be one of true/false/1/0/yes/no/on/off")


def env_url(
    env: Mapping[str, str], name: str, default: str | None, schemes: set[str]
) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    parsed = urlparse(raw.strip())
    if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
        wanted = ", ".join(sorted(f"{s}://..." for s in schemes))
        raise ConfigError(f"{name}={raw!r} is not a valid URL; expected {wanted}")
    return raw.strip()


#: Credentials used against a local endpoint (moto) when the environment names none;
#: moto accepts any unless its IAM enforcement is on.
LOCAL_CREDENTIALS = "testing"


@dataclass(frozen=True)
class AwsSettings:
    """Where the AWS services (or moto) are and how to sign requests.

    Credentials are passed to clients only when the environment names them
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, with ``AWS_SESSION_TOKEN``
    for temporary ones, as a Lambda or an assumed role has), or as
    :data:`LOCAL_CREDENTIALS` for a local endpoint. Otherwise boto3's own chain
    finds them (an instance or task role, a profile), as on AWS it must.
    """

    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    session_token: str | None = None
    #: Where the *source table* is (``CHROMASYNC_TABLE_ENDPOINT_URL``), when it is not
    #: where the other services are: the worker's and the operator's reads of it, the
    #: delta merger's status writes and the worker's probe of it go there; the stream,
    #: SQS, S3 and the lock, checkpoint and dashboard tables stay at ``endpoint_url``.
    #: None: the table is with everything else. Why: a DynamoDB stand-in that serves
    #: reads in parallel (dynalite, ``benchmarks.parallel_table``) has no streams.
    table_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsSettings:
        env = os.environ if env is None else env
        endpoint_url = env_url(env, "AWS_ENDPOINT_URL", None, {"http", "https"})
        key = env.get("AWS_ACCESS_KEY_ID", "").strip() or None
        secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip() or None
        if (key is None) != (secret is None):
            raise ConfigError(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither, "
                "to use the instance, task or Lambda role)"
            )
        if key is None and endpoint_url:
            key = secret = LOCAL_CREDENTIALS
        return cls(
            endpoint_url=endpoint_url,
            region=env_str(env, "AWS_DEFAULT_REGION", "")
            or env_str(env, "AWS_REGION", DEFAULT_REGION),
            access_key_id=key,
            secret_access_key=secret,
            session_token=(env.get("AWS_SESSION_TOKEN", "").strip() or None) if key else None,
            table_endpoint_url=env_url(
                env, "CHROMASYNC_TABLE_ENDPOINT_URL", None, {"http", "https"}
            ),
        )

    def client_kwargs(self) -> dict[str, str]:
        kwargs = {"region_name": self.region}
        if self.access_key_id and self.secret_access_key:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
            if self.session_token:
                kwargs["aws_session_token"] = self.session_token
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return kwargs

    def for_table(self) -> AwsSettings:
        """These settings as the source table's clients need them: pointed at
        :attr:`table_endpoint_url` when it is set (local credentials there when the
        environment names none, as for any local endpoint), else unchanged.

        For code that takes an :class:`AwsSettings` and builds its own client
        (:class:`tasks.sources.TableReader`)."""
        if self.table_endpoint_url is None:
            return self
        key, secret, token = self.access_key_id, self.secret_access_key, self.session_token
        if key is None:
            key = secret = LOCAL_CREDENTIALS
        return replace(
            self,
            endpoint_url=self.table_endpoint_url,
            access_key_id=key,
            secret_access_key=secret,
            session_token=token,
        )

    def table_client_kwargs(self) -> dict[str, str]:
        """boto3 client arguments for the source table (:meth:`for_table`)."""
        return self.for_table().client_kwargs()


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline is pointed at, one place, one source (env)."""

    aws: AwsSettings
    table: str
    queue_prefix: str
    collections: tuple[str, ...]
    fifo: bool
    max_changes_per_task: int
    #: Seconds a received task stays invisible to other workers (queue attribute).
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    enabled_entities: Mapping[str, bool] = field(default_factory=dict)
    #: The sinks turned on (``CHROMASYNC_SINKS``), Chroma first.
    sinks: tuple[str, ...] = DEFAULT_SINKS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        raw_collections = env_str(env, "CHROMASYNC_COLLECTIONS", ",".join(DEFAULT_COLLECTIONS))
        collections = tuple(c.strip() for c in raw_collections.split(",") if c.strip())
        if len(collections) != 2 or len(set(collections)) != 2:
            raise ConfigError(
                f"CHROMASYNC_COLLECTIONS={raw_collections!r} must name two distinct collections: "
                "the lines collection, then the words collection (for example 'lines,words')"
            )
        for name in collections:
            if not _SQS_NAME_PART.fullmatch(name):
                raise ConfigError(
                    f"CHROMASYNC_COLLECTIONS entry {name!r} may only hold letters, digits, - and _"
                )
        queue_prefix = env_str(env, "CHROMASYNC_QUEUE_PREFIX", DEFAULT_QUEUE_PREFIX)
        if not _SQS_NAME_PART.fullmatch(queue_prefix):
            # SQS queue names hold letters, digits, - and _ only; kombu would
            # silently turn a '.' into '-' and miss the queues we created.
            raise ConfigError(
                f"CHROMASYNC_QUEUE_PREFIX={queue_prefix!r} may only hold letters, digits, - and _"
            )
        sinks = _sinks(env_str(env, "CHROMASYNC_SINKS", ",".join(DEFAULT_SINKS)))
        clash = set(collections) & set(sinks[1:])
        if clash:
            raise ConfigError(
                f"CHROMASYNC_COLLECTIONS names {sorted(clash)}, which is also a sink's queue "
                "(CHROMASYNC_SINKS): give the collection another name"
            )
        return cls(
            aws=AwsSettings.from_env(env),
            table=env_str(env, "CHROMASYNC_TABLE", DEFAULT_TABLE),
            queue_prefix=queue_prefix,
            collections=collections,
            fifo=env_bool(env, "CHROMASYNC_FIFO", False),
            visibility_timeout=env_int(
                env, "CHROMASYNC_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT, minimum=1
            ),
            max_changes_per_task=env_int(
                env, "CHROMASYNC_MAX_CHANGES_PER_TASK", DEFAULT_MAX_CHANGES_PER_TASK, minimum=1
            ),
            enabled_entities={spec.flag: env_bool(env, spec.flag, True) for spec in REGISTRY},
            sinks=sinks,
        )

    @property
    def targets(self) -> tuple[str, ...]:
        """Every target's name: the collections, then each other sink's own (its name).

        A target has its own queue, lock and dead-letter queue; a batch's
        ``collection`` names one.
        """
        return (*self.collections, *self.sinks[1:])

    def sink_of(self, target: str) -> str:
        """The sink a target belongs to; :class:`UnknownCollection` for any other name."""
        if target in self.collections:
            return CHROMA
        if target in self.sinks:
            return target
        raise UnknownCollection(
            f"{target!r} is not one of {list(self.targets)} "
            "(CHROMASYNC_COLLECTIONS and CHROMASYNC_SINKS)"
        )

    def select_targets(self, wanted: str | None) -> list[str]:
        """``[wanted]``, or every target when None; ConfigError for a name not configured."""
        if wanted is None:
            return list(self.targets)
        if wanted not in self.targets:
            sinks = f" and CHROMASYNC_SINKS adds {list(self.sinks[1:])}" if self.sinks[1:] else ""
            raise ConfigError(
                f"unknown collection {wanted!r}; CHROMASYNC_COLLECTIONS names "
                f"{list(self.collections)}{sinks}"
            )
        return [wanted]

    @property
    def lines_collection(self) -> str:
        return self.collections[0]

    @property
    def words_collection(self) -> str:
        return self.collections[1]

    @property
    def roles(self) -> dict[CollectionRole, str]:
        """Each role's collection; ``CHROMASYNC_COLLECTIONS`` lists them in role order."""
        return dict(zip(CollectionRole, self.collections, strict=True))

    def collection_for(self, role: CollectionRole) -> str:
        """The configured collection that plays ``role``."""
        return self.roles[role]

    def role_of(self, collection: str) -> CollectionRole:
        """The role a configured collection plays; :class:`UnknownCollection` for any other."""
        for role, name in self.roles.items():
            if name == collection:
                return role
        raise UnknownCollection(
            f"collection {collection!r} is not one of {list(self.collections)} "
            "(CHROMASYNC_COLLECTIONS)"
        )

    def select_collections(self, wanted: str | None) -> list[str]:
        """``[wanted]``, or every collection when None; ConfigError for a name not configured."""
        names = list(self.collections)
        if wanted is None:
            return names
        if wanted not in names:
            raise ConfigError(
                f"unknown collection {wanted!r}; CHROMASYNC_COLLECTIONS names {names}"
            )
        return [wanted]

    def queue_for(self, collection: str) -> str:
        """The Celery queue name of a collection (SQS adds the prefix)."""
        return f"{collection}.fifo" if self.fifo else collection

    def sqs_queue_name(self, collection: str) -> str:
        return f"{self.queue_prefix}{self.queue_for(collection)}"

    def dlq_name(self, collection: str) -> str:
        suffix = "-dlq.fifo" if self.fifo else "-dlq"
        return f"{self.queue_prefix}{collection}{suffix}"


def _sinks(raw: str) -> tuple[str, ...]:
    """``CHROMASYNC_SINKS`` read: known names, no repeats, Chroma first and present."""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise ConfigError(
            f"CHROMASYNC_SINKS={raw!r} names unknown sinks {unknown}; known: {sorted(SINKS)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"CHROMASYNC_SINKS={raw!r} names a sink twice")
    if CHROMA not in names:
        raise ConfigError(
            f"CHROMASYNC_SINKS={raw!r} must include {CHROMA!r}: the Chroma sink cannot be "
            "turned off (its collections are what the rest of chromasync is built around)"
        )
    return (CHROMA, *(n for n in names if n != CHROMA))
