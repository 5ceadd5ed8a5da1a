"""Retention: the raw prediction rows older than the retention period go; what later work needs stays."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from storage import bulk, repository
from storage.errors import translate


def prune_models(
    session_factory: sessionmaker[Session], models: Iterable[tuple[str, str]], older_than: datetime
) -> dict[str, int]:
    """For each ``(name, task)``, delete its unlabelled, unflagged prediction rows older than
    ``older_than`` (see :func:`storage.bulk.prune_predictions`), in one transaction; the rows
    deleted per model. A model not seen before is registered (with nothing to prune)."""
    pruned: dict[str, int] = {}
    with translate(session_factory), session_factory.begin() as session:
        for name, task in models:
            row = repository.ensure_model(session, name, task)
            pruned[name] = bulk.prune_predictions(session.connection(), row.id, older_than)
    return pruned
