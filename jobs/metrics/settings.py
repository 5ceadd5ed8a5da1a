"""The ``metrics`` section of the settings (see the README, "Alerts and metrics").

``driftkeeper serve`` exposes ``/metrics`` on ``address:port`` while ``enabled``; one-shot
``driftkeeper run`` commands write ``<textfile_dir>/driftkeeper.prom`` (node_exporter's textfile
collector format) when ``textfile_dir`` is set. ``max_columns`` and ``max_reasons`` bound the
cardinality of the ``column`` and ``reason`` labels.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_PORT = 9108
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="serve /metrics from `driftkeeper serve`")
    address: str = Field("127.0.0.1", description="the address /metrics listens on (0.0.0.0: every interface)")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="the port of /metrics (0: any free port)")
    textfile_dir: Path | None = Field(
        None, description="one-shot runs write driftkeeper.prom here for node_exporter's textfile collector"
    )
    max_columns: int = Field(50, ge=1, le=1000, description="column series per model version (drifted ones first)")
    max_reasons: int = Field(10, ge=1, le=100, description="quarantine reasons per model; the rest count as 'other'")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.match(value):
                raise ValueError(
                    f"not an IP address or host name: {value!r}; e.g. '127.0.0.1', '0.0.0.0' or '::'"
                ) from None
        return value
