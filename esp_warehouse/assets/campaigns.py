"""Campaign launches: per declared campaign, a guard asset with blocking checks, then the launch asset.

* ``[provider, "campaign_guards", name]`` works out the launch's occurrence and ``campaign_key``, plans the
  ledger row and evaluates every guard (``espcore.campaigns.guards``); each guard is a blocking asset check on
  it, so a failing guard fails the step and the launch downstream does not run.
* ``[provider, "campaigns", name]`` launches through ``espcore.campaigns.launch``: the ledger makes re-runs
  no-ops and an ambiguous outcome a ``dg.Failure(allow_retries=False)``. It has no retry policy and no
  automation condition; its job sets ``dagster/max_retries`` to 0 so run retries never resend either.

The occurrence (part of the key): the run config's ``occurrence`` if given; else the schedule tick
(``dagster/scheduled_execution_time``); else, for a scheduled campaign, the latest tick at or before now (so a
manual run and the tick share one key); else ``once`` (a one-off campaign is launched once, ever).
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import Field

from esp_warehouse.assets.subscribers import sync_key
from esp_warehouse.config import CampaignDecl, Declarations, SyncDecl
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.campaigns.guards import GUARD_NAMES, GuardPolicy, GuardResult, evaluate, gather_facts
from espcore.campaigns.launch import LaunchError, LaunchOutcomeUnknown, launch, poll, send_test
from espcore.campaigns.ledger import Ledger
from espcore.campaigns.spec import LaunchSpec, render_body

#: the tick a scheduled run belongs to (1.13 writes the hidden ``.dagster/`` form)
SCHEDULED_TAGS = (".dagster/scheduled_execution_time", "dagster/scheduled_execution_time")

GUARD_DESCRIPTIONS = {
    "sync_fresh": "The book's sync last succeeded within max_sync_age_minutes.",
    "rejected_share": "The last sync's rejected share is under the threshold.",
    "book_size": "The book has recipients, and no more than max_recipients.",
    "balance_covers": "The balance / sending quota covers the send (not exposed by LiteStartup: passes with a note).",
    "hourly_cap": "SendPulse: fewer than 4 API campaigns in the rolling hour (ledger and provider listing).",
    "test_send": "When require_test_send: a test send is recorded for this launch key.",
}


class LaunchConfig(dg.Config):
    """Run-time switches of a campaign launch (set on the guard step)."""

    occurrence: str = Field(default="", description="Override the occurrence (part of the launch key).")
    test_only: bool = Field(default=False, description="Send a test to test_recipients only; launch nothing.")


class PollConfig(dg.Config):
    poll_timeout_s: float = Field(default=0.0, description="Poll the campaign until terminal, up to this long.")
    poll_interval_s: float = Field(default=15.0, description="Seconds between polls.")


def guard_key(decl: CampaignDecl) -> dg.AssetKey:
    return dg.AssetKey([decl.provider, "campaign_guards", decl.name])


def launch_key(decl: CampaignDecl) -> dg.AssetKey:
    return dg.AssetKey([decl.provider, "campaigns", decl.name])


def occurrence_for(decl: CampaignDecl, tags: dict[str, str], override: str = "", now: datetime | None = None) -> str:
    """Which occurrence a run launches (see the module docstring); minutes, in the execution time zone."""
    if override:
        return override
    zone = ZoneInfo(decl.execution_timezone)
    tick = next((tags[t] for t in SCHEDULED_TAGS if tags.get(t)), None)
    if tick:
        return datetime.fromisoformat(tick).astimezone(zone).isoformat(timespec="minutes")
    if decl.schedule:
        from dagster._utils.schedules import reverse_cron_string_iterator  # no public equivalent in 1.13

        at = (now or datetime.now(UTC)).timestamp()
        latest = next(reverse_cron_string_iterator(at, decl.schedule, decl.execution_timezone))
        return latest.astimezone(zone).isoformat(timespec="minutes")
    return "once"


def launch_spec(decl: CampaignDecl, sync: SyncDecl, occurrence: str) -> LaunchSpec:
    html: str | None = None
    path = decl.html_path()
    if path is not None:
        html = render_body(
            path,
            {
                "campaign": decl.name,
                "subject": decl.subject,
                "occurrence": occurrence,
                "provider": decl.provider,
                "book": sync.book,
            },
        )
    return LaunchSpec(
        name=decl.name,
        provider=decl.provider,
        book=sync.book,
        subject=decl.subject,
        sender_name=decl.sender_name,
        sender_email=decl.sender_email,
        occurrence=occurrence,
        template_id=decl.template_id,
        html=html,
        body_ref=decl.html_file or decl.template_id,
        send_at=decl.send_at_datetime(),
        title=decl.title or f"{decl.name} {occurrence}",
        test_recipients=tuple(decl.test_recipients),
    )


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v.value if hasattr(v, "value") else v for k, v in metadata.items()}


def build_guard_asset(decl: CampaignDecl, sync: SyncDecl, sync_asset: dg.AssetKey) -> dg.AssetsDefinition:
    key = guard_key(decl)
    policy = GuardPolicy(
        sync_name=sync.name,
        book=sync.book,
        max_sync_age_minutes=decl.max_sync_age_minutes,
        max_rejected_pct=decl.max_rejected_pct if decl.max_rejected_pct is not None else sync.error_rejected_pct,
        max_recipients=decl.max_recipients,
        require_test_send=decl.require_test_send,
        test_recipients=tuple(decl.test_recipients),
    )

    @dg.asset(
        key=key,
        deps=[sync_asset],
        kinds={decl.provider_kind},
        group_name=f"{decl.provider}_campaigns",
        pool=f"{decl.provider}_api",
        required_resource_keys={decl.provider, "warehouse"},
        check_specs=[
            dg.AssetCheckSpec(name, asset=key, blocking=True, description=GUARD_DESCRIPTIONS[name])
            for name in GUARD_NAMES
        ],
        description=f"Pre-launch guards of campaign {decl.name} to book '{sync.book}': plans the launch key in "
        "the ledger and evaluates each guard as a blocking check; a failure holds the launch.",
        metadata={"esp/campaign": decl.name, "esp/sync": sync.name},
    )
    def _guard(context: dg.AssetExecutionContext, config: LaunchConfig) -> dg.MaterializeResult:
        warehouse: WarehouseResource = context.resources.warehouse
        wh = warehouse.get_warehouse()
        provider = getattr(context.resources, decl.provider).get_provider()
        occurrence = occurrence_for(decl, dict(context.run.tags), config.occurrence)
        spec = launch_spec(decl, sync, occurrence)
        ledger = Ledger(wh)
        row = ledger.get(spec.key)
        facts = gather_facts(
            warehouse=wh,
            ledger=ledger,
            provider=provider,
            sync_name=sync.name,
            book=sync.book,
            key=spec.key,
            now=datetime.now(UTC),
        )
        if facts.book_id is not None:
            row = ledger.plan(
                spec.key,
                provider=decl.provider,
                book_id=facts.book_id,
                campaign_name=decl.name,
                occurrence=occurrence,
                provider_name=spec.provider_name,
                run_id=context.run.run_id,
            )
        test_note = ""
        if config.test_only:
            if facts.book_id is None:
                raise dg.Failure(f"campaign {decl.name}: book '{sync.book}' not found; sync it first")
            test_note = send_test(spec, provider, ledger, book_id=facts.book_id, recipients=list(decl.test_recipients))
            context.log.info(test_note)
        results: dict[str, GuardResult]
        if row is not None and row.status == "sent":
            note = f"already launched (ledger: sent, campaign {row.provider_campaign_id}); guards not re-evaluated"
            results = {n: GuardResult(True, note) for n in GUARD_NAMES}
        else:
            current = ledger.get(spec.key)
            facts.test_sent_at = current.test_sent_at if current is not None else None
            results = evaluate(facts, policy, provider.name)
        blocked = [f"{n}: {r.reason}" for n, r in results.items() if not r.passed]
        for line in blocked:
            context.log.warning(f"campaign {decl.name} blocked by {line}")
        metadata: dict[str, Any] = {
            "campaign_key": spec.key,
            "occurrence": occurrence,
            "provider_name": spec.provider_name,
            "book_id": facts.book_id or "",
            "recipients": facts.recipients if facts.recipients is not None else -1,
            "estimated_cost": facts.cost.estimated_cost or "n/a",
            "cost_note": facts.cost.note,
            "ledger_status": row.status if row is not None else "none",
            "posts_last_hour": facts.posts_last_hour,
            "test_only": config.test_only,
            "blocked_by": "; ".join(blocked) or "nothing",
        }
        if test_note:
            metadata["test_send"] = test_note
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(check_name=n, passed=r.passed, description=r.reason) for n, r in results.items()
            ],
        )

    return _guard


def build_launch_asset(decl: CampaignDecl, sync: SyncDecl) -> dg.AssetsDefinition:
    gkey = guard_key(decl)

    @dg.asset(
        key=launch_key(decl),
        deps=[gkey],
        kinds={decl.provider_kind},
        group_name=f"{decl.provider}_campaigns",
        pool=f"{decl.provider}_api",
        required_resource_keys={decl.provider, "warehouse"},
        output_required=False,  # a test-only run launches nothing
        description=f"Launch of campaign {decl.name} ('{decl.subject}') to book '{sync.book}' at "
        f"{decl.provider}: at most once per launch key (docs/sync-semantics.md §8). No retries.",
        metadata={"esp/campaign": decl.name, "esp/schedule": decl.schedule or "one-off"},
    )
    def _launch(context: dg.AssetExecutionContext, config: PollConfig) -> Iterator[dg.MaterializeResult]:
        event = context.instance.get_latest_materialization_event(gkey)
        if event is None or event.run_id != context.run.run_id or event.asset_materialization is None:
            raise dg.Failure(
                f"campaign {decl.name}: its guard {gkey.to_user_string()} did not run in this run; launches only "
                "happen right after their guards pass (select both)",
                allow_retries=False,
            )
        guard = _plain(dict(event.asset_materialization.metadata))
        if guard.get("test_only"):
            context.log.info(f"test-only run of {decl.name}: {guard.get('test_send', '')}; nothing launched")
            return
        spec = launch_spec(decl, sync, str(guard["occurrence"]))
        if spec.key != guard["campaign_key"]:
            raise dg.Failure(f"launch key mismatch ({spec.key} != {guard['campaign_key']})", allow_retries=False)
        warehouse: WarehouseResource = context.resources.warehouse
        provider = getattr(context.resources, decl.provider).get_provider()
        ledger = Ledger(warehouse.get_warehouse())
        try:
            result = launch(spec, provider, ledger, book_id=str(guard["book_id"]), run_id=context.run.run_id)
        except LaunchError as exc:
            row = ledger.get(spec.key)
            kind = "OUTCOME UNKNOWN" if isinstance(exc, LaunchOutcomeUnknown) else type(exc).__name__
            raise dg.Failure(
                description=f"campaign {decl.name} [{kind}]: {exc.message}",
                metadata={
                    "campaign_key": spec.key,
                    "ledger_status": row.status if row else exc.status,
                    "last_error": (row.last_error if row else None) or "",
                },
                allow_retries=False,
            ) from exc
        for note in result.notes:
            context.log.info(note)
        polled = poll(
            provider,
            result.campaign.id,
            timeout_s=config.poll_timeout_s,
            interval_s=config.poll_interval_s,
            warn=context.log.warning,
        )
        campaign = polled.campaign
        metadata: dict[str, Any] = {
            "campaign_key": spec.key,
            "occurrence": spec.occurrence,
            "provider_campaign_id": campaign.id,
            "provider_name": campaign.name,
            "status": str(campaign.state),
            "provider_status": campaign.provider_status,
            "ledger_status": result.status,
            "action": result.action,
            "recipients": campaign.recipients if campaign.recipients is not None else int(guard["recipients"]),
            "estimated_cost": str(guard.get("estimated_cost", "n/a")),
            "terminal": polled.terminal,
        }
        link = campaign.extra.get("permalink") if campaign.extra else None
        if link:
            metadata["link"] = dg.MetadataValue.url(str(link))
        if polled.stats is not None:
            for name in ("sent", "delivered", "opened", "clicked", "bounced"):
                value = getattr(polled.stats, name)
                if value is not None:
                    metadata[f"stats_{name}"] = value
        if result.notes:
            metadata["notes"] = "; ".join(result.notes)
        context.log.info(f"campaign {decl.name}: {result.action} {campaign.id} ({campaign.provider_status})")
        yield dg.MaterializeResult(metadata=metadata)

    return _launch


def build_campaign_defs(decls: Declarations, sync_keys: Mapping[str, dg.AssetKey] | None = None) -> dg.Definitions:
    """Guard + launch assets, one job per campaign, and a schedule for each campaign that declares one. A guard
    depends on its sync's asset (``sync_keys[name]`` when a translation moved it)."""
    assets: list[dg.AssetsDefinition] = []
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    for decl in decls.campaigns:
        sync = decls.sync(decl.sync)
        guard = build_guard_asset(decl, sync, sync_key(sync, sync_keys))
        assets += [guard, build_launch_asset(decl, sync)]
        job = dg.define_asset_job(
            f"launch_{decl.name}",
            selection=dg.AssetSelection.assets(guard_key(decl), launch_key(decl)),
            description=f"Guards, then launch, of campaign {decl.name}. Never retried.",
            tags={"dagster/max_retries": "0", "esp/campaign": decl.name},
        )
        jobs.append(job)
        if decl.schedule:
            schedules.append(
                dg.ScheduleDefinition(
                    name=f"launch_{decl.name}_schedule",
                    job=job,
                    cron_schedule=decl.schedule,
                    execution_timezone=decl.execution_timezone,
                    execution_fn=_tick_request(decl, guard.node_def.name),
                    description=f"Launch {decl.name} at '{decl.schedule}' ({decl.execution_timezone}); each tick "
                    "is its own launch key (run_key = occurrence).",
                )
            )
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)


def _tick_request(decl: CampaignDecl, guard_op: str) -> Any:
    zone = ZoneInfo(decl.execution_timezone)

    def _request(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time or datetime.now(UTC)
        occurrence = tick.astimezone(zone).isoformat(timespec="minutes")
        return dg.RunRequest(
            run_key=f"{decl.name}:{occurrence}",
            run_config=dg.RunConfig(ops={guard_op: LaunchConfig(occurrence=occurrence)}),
            tags={"esp/occurrence": occurrence},
        )

    return _request


def campaign_asset_keys(decls: Sequence[CampaignDecl]) -> list[dg.AssetKey]:
    return [k for d in decls for k in (guard_key(d), launch_key(d))]
