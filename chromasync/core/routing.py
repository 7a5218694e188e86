"""Which targets a change goes to: the sinks turned on, read against the registries.

The producer asks this for every record, so each entity's routes are worked
out once per settings object and kept.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from chromasync.core.config import Settings
from chromasync.core.entities import SPECS_BY_TYPE, CollectionRole, EntitySpec
from chromasync.core.sinks import ITEM_EVENTS, SINKS


@dataclass(frozen=True)
class Route:
    """The targets of one sink for one entity, and when its changes matter to them."""

    targets: tuple[str, ...]
    #: A MODIFY matters when one of these fields changed.
    fields: tuple[str, ...]
    #: These events matter whatever changed.
    events: frozenset[str]


def _chroma_route(collections: tuple[str, ...], spec: EntitySpec) -> Route:
    """Chroma's route is the registry's: the entity's collections and monitored fields."""
    by_role = dict(zip(CollectionRole, collections, strict=True))
    targets = tuple(by_role[role] for role in spec.roles)
    events = ITEM_EVENTS if spec.monitored_fields else spec.events_without_fields
    return Route(targets, spec.monitored_fields, events)


def routes_of(settings: Settings, entity_type: str) -> tuple[Route, ...]:
    """Every route of an entity under these settings (the Chroma one first)."""
    return _routes(settings.collections, settings.sinks, entity_type)


@functools.cache
def _routes(
    collections: tuple[str, ...], sinks: tuple[str, ...], entity_type: str
) -> tuple[Route, ...]:
    spec = SPECS_BY_TYPE[entity_type]
    routes = [_chroma_route(collections, spec)]
    for name in sinks[1:]:
        watch = (SINKS[name].watches or {}).get(spec.entity_type)
        if watch is not None:
            routes.append(Route((name,), watch.fields, watch.events))
    return tuple(routes)


def all_targets_of(settings: Settings, entity_type: str) -> tuple[str, ...]:
    """Every target that takes this entity's changes, whatever their event."""
    return tuple(t for route in routes_of(settings, entity_type) for t in route.targets)
