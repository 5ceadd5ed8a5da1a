"""The ``metrics`` section of the settings (see the README, "Alerts and metrics")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
