"""The ``review`` section of the settings (see the README, "The review loop").

``driftkeeper review`` (without a subcommand) listens on ``host:port`` and, when ``token`` is set, asks for it;
decisions without a named reviewer are stored under ``reviewer``. The queue holds, besides the
flagged predictions, unlabelled predictions below ``low_confidence_below`` (default: the model's
``confidence_threshold``) and a deterministic control sample of ``control_share`` of the other
unlabelled predictions, so that the labels are not only hard cases.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ReviewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="the address the review page listens on")
    port: int = Field(8765, ge=0, le=65535, description="the port of the review page (0: any free port)")
    token: SecretStr | None = Field(None, description="a shared secret the review page asks for (None: none)")
    reviewer: str = Field("reviewer", min_length=1, max_length=200, description="the default reviewer name")
    control_share: float = Field(
        0.01, ge=0, le=1, description="share of the unlabelled, confident predictions queued as a random control"
    )
    low_confidence_below: float | None = Field(
        None, gt=0, le=1, description="unlabelled predictions below this confidence are queued (None: the model's)"
    )
    image_url_prefix: str | None = Field(
        None,
        description="Label Studio export: URL prefix put before an image's path relative to its image root "
        "(e.g. '/data/local-files/?d=images/'); None: the logged input_uri as it is",
    )
