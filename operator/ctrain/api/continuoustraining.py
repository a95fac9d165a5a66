"""The ContinuousTraining spec: a TrainingJob template and the triggers that start runs."""

import zoneinfo
from typing import Literal

from croniter import croniter
from pydantic import Field, field_validator

from ctrain.api.common import DNS1123_SUBDOMAIN, ApiModel, Int32, TemplateMetadata
from ctrain.api.trainingjob import TrainingJobSpec

__all__ = [
    "ContinuousTrainingSpec",
    "OnDriftTrigger",
    "OnNewDataTrigger",
    "TrainingJobTemplate",
    "TriggersSpec",
]


class TrainingJobTemplate(ApiModel):
    """The TrainingJob created for each run."""

    metadata: TemplateMetadata | None = Field(
        default=None, description="Labels and annotations of each TrainingJob."
    )
    spec: TrainingJobSpec = Field(description="Spec of each TrainingJob.")


class OnNewDataTrigger(ApiModel):
    """Start a run when the dataset object changes (its ETag or version)."""

    poll_interval_seconds: Int32 = Field(
        default=300, ge=10, description="Seconds between checks of the dataset object."
    )


class OnDriftTrigger(ApiModel):
    """Start a run when a ModelDeployment reports drift."""

    deployment: str = Field(
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Name of a ModelDeployment in the same namespace.",
    )
    cooldown_seconds: Int32 = Field(
        default=3600, ge=0, description="Seconds after a drift-started run before the next."
    )


class TriggersSpec(ApiModel):
    """What starts a run. With none, runs start only by hand (annotation ctrain.dev/trigger)."""

    schedule: str | None = Field(
        default=None,
        max_length=128,
        description="Cron schedule (5 fields or @hourly/@daily/...), e.g. '0 3 * * *'.",
    )
    time_zone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone of the schedule, e.g. Europe/Berlin. Default: UTC.",
    )
    on_new_data: OnNewDataTrigger | None = Field(
        default=None, description="Run when the dataset changes (s3:// datasets)."
    )
    on_drift: OnDriftTrigger | None = Field(
        default=None, description="Run when a ModelDeployment reports drift."
    )
    allow_same_data: bool = Field(
        default=False,
        description="Whether schedule and drift triggers start a run on data already "
        "trained on (the same dataset fingerprint). By default they are skipped with "
        "reason NoNewData. Manual and new-data runs are never skipped.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        fields_ok = value.startswith("@") or len(value.split()) == 5
        if not (fields_ok and croniter.is_valid(value)):
            raise ValueError(f"{value!r} is not a cron schedule (5 fields or @daily etc.)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone") from error
        return value


class ContinuousTrainingSpec(ApiModel):
    """The training loop: create TrainingJobs from a template when a trigger fires."""

    template: TrainingJobTemplate = Field(description="The TrainingJob to create per run.")
    triggers: TriggersSpec = Field(default_factory=TriggersSpec, description="What starts a run.")
    concurrency_policy: Literal["Forbid", "Replace"] = Field(
        default="Forbid",
        description="When a run is due while one is active: Forbid skips it, Replace "
        "deletes the active run and starts a new one.",
    )
    successful_runs_history_limit: Int32 = Field(
        default=3, ge=0, description="Succeeded TrainingJobs to keep."
    )
    failed_runs_history_limit: Int32 = Field(
        default=1, ge=0, description="Failed TrainingJobs to keep."
    )
    suspend: bool = Field(default=False, description="Whether new runs are held back.")
