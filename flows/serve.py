"""`jiwon serve`: the disburse flow as two deployments on a Prefect server.

- `disburse/monthly`: scheduled at 06:00 Asia/Seoul on the 1st of every month, trigger `scheduled`.
- `disburse/rerun`: no schedule; an operator starts it from the Prefect UI or with
  `prefect deployment run disburse/rerun --params '{"params": {...}}'`, giving a reason.

Parameters are validated twice: against the flow's JSON schema when the run is created
(`enforce_parameter_schema`), and by `DisburseParams` when it starts (a rerun needs a reason).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.errors import UsageError
from flows.i18n import _
from flows.run.flow import SEOUL, DisburseParams, disburse

MONTHLY_CRON = "0 6 1 * *"
TIMEZONE = str(SEOUL)


def base_parameters(
    program: str, registry: Path, enrollments: Path, out: Path, operator: str
) -> dict[str, Any]:
    """Return the deployments' default `params`, validated here so a typo fails at start-up."""
    params = DisburseParams(
        program=program,
        registry=registry.resolve(),
        enrollments=enrollments.resolve(),
        out=out.resolve(),
        operator=operator,
        await_approval=True,  # a committed run pauses until an approver decides (issue 18)
    )
    return params.model_dump(mode="json")


def deployments(base: dict[str, Any]) -> list[Any]:
    """Return the `monthly` and `rerun` deployments of the disburse flow."""
    from prefect.schedules import Cron

    monthly = disburse.to_deployment(
        name="monthly",
        schedule=Cron(MONTHLY_CRON, timezone=TIMEZONE),
        parameters={"params": base | {"trigger": "scheduled", "operator": "schedule"}},
        description=_("Pays the month's newly eligible, enrolled residents: 06:00 KST on the 1st."),
        tags=[base["program"], "monthly"],
        enforce_parameter_schema=True,
    )
    rerun = disburse.to_deployment(
        name="rerun",
        parameters={"params": base | {"trigger": "rerun"}},
        description=_(
            "Operator rerun: set params.reason (required) and params.operator; it pays only "
            "what no committed run has paid. Set params.dry_run to preview."
        ),
        tags=[base["program"], "rerun"],
        enforce_parameter_schema=True,
    )
    return [monthly, rerun]


def require_server() -> str:
    """Return the Prefect API URL; refuse to serve on a temporary (ephemeral) server."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise UsageError(
            _(
                "jiwon serve needs a Prefect server: start one with `prefect "
                "server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api "
                "(schedules do not run on a temporary one)"
            )
        )
    return str(url)


def serve_deployments(base: dict[str, Any]) -> None:
    """Register both deployments and run their flow runs until interrupted."""
    from prefect import serve

    serve(*deployments(base), print_starting_message=True)
