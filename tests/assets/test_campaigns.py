"""Campaign launch assets in Dagster: sync, guards, launch against the embedded sandboxes; re-runs are no-ops,
a failing guard blocks the launch with a readable reason, an ambiguous outcome is a non-retryable failure."""

import shutil
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest

from assets.warehouse import SEGMENT_KEYS, demo_warehouse
from esp_warehouse.assets.campaigns import (
    SCHEDULED_TAGS,
    build_campaign_defs,
    campaign_asset_keys,
    guard_key,
    launch_key,
    occurrence_for,
)
from esp_warehouse.assets.checks import build_checks
from esp_warehouse.assets.subscribers import build_sync_asset
from esp_warehouse.config import CampaignDecl, Declarations
from espcore.campaigns.spec import key_suffix
from espcore.sandbox.pakat import DEMO_SENDING_DOMAIN
from espcore.sandbox.sendpulse import DEMO_SENDER_EMAIL
from pipelines import PIPELINES_DIR
from tests.assets.test_subscribers import materialized, resources

TEMPLATES = {"root": PIPELINES_DIR}  # the repository's declarations folder: its templates

SYNCS = [
    {
        "name": "sp_eu",
        "provider": "sendpulse",
        "book": "EU",
        "source": {"view": "segment_active_eu"},
        "fields": {"first_name": "first_name"},
    },
    {
        "name": "pk_trial",
        "provider": "pakat",
        "book": "Trial",
        "source": {"view": "segment_trial_users"},
        "fields": {"FNAME": "first_name"},
    },
]
CAMPAIGNS = [
    {
        "name": "sp_hello",
        "provider": "sendpulse",
        "sync": "sp_eu",
        "subject": "Hello EU",
        "sender_name": "Sandbox Demo",
        "sender_email": DEMO_SENDER_EMAIL,
        "html_file": "templates/welcome.html.j2",
    },
    {
        "name": "pk_hello",
        "provider": "pakat",
        "sync": "pk_trial",
        "subject": "Hello trial",
        "sender_name": "Demo Shop",
        "sender_email": f"news@{DEMO_SENDING_DOMAIN}",
        "html_file": "templates/welcome.html.j2",
    },
]


def declarations(**campaign_changes: Any) -> Declarations:
    return Declarations.model_validate(
        {"syncs": SYNCS, "campaigns": [{**c, **campaign_changes} for c in CAMPAIGNS]}, context=TEMPLATES
    )


def all_assets(decls: Declarations) -> list[Any]:
    seg = {d.name: SEGMENT_KEYS[d.source.relation or ""] for d in decls.syncs}
    syncs = [build_sync_asset(d, seg[d.name]) for d in decls.syncs]
    camp = build_campaign_defs(decls)
    return [demo_warehouse, *syncs, *build_checks(decls.syncs, seg), *(camp.assets or [])]


def at_provider(res: dict[str, Any], provider: str, key: str) -> list[Any]:
    adapter = res[provider].get_provider()
    try:
        return [c for c in adapter.list_campaigns() if c.name.endswith(key_suffix(key))]
    finally:
        adapter.close()


def test_sync_then_launch_with_metadata_and_rerun_is_a_noop(tmp_path):
    decls = declarations()
    res = resources(tmp_path)
    assets = all_assets(decls)
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, resources=res, instance=instance)
        assert result.success
        mats = materialized(result)
        evals = result.get_asset_check_evaluations()
        guards = [e for e in evals if "campaign_guards" in e.asset_key.to_user_string()]
        assert len(guards) == 12
        assert all(e.passed for e in guards), [(e.check_name, e.description) for e in guards if not e.passed]
        first: dict[str, dict[str, Any]] = {}
        for decl in decls.campaigns:
            md = mats[launch_key(decl).to_user_string()]
            first[decl.name] = md
            assert md["action"] == "created"
            assert md["ledger_status"] == "sent"
            assert md["provider_campaign_id"]
            assert md["provider_name"].endswith(f"ck-{md['campaign_key']}")
            assert md["status"] in ("pending", "sent")
            assert md["recipients"] > 0
            assert md["occurrence"] == "once"
            assert "estimated_cost" in md
            guard_md = mats[guard_key(decl).to_user_string()]
            assert guard_md["campaign_key"] == md["campaign_key"]
            assert guard_md["blocked_by"] == "nothing"
        assert first["sp_hello"]["estimated_cost"] != "n/a"  # SendPulse prices the send

        keys = campaign_asset_keys(decls.campaigns)
        again = dg.materialize(assets, selection=keys, resources=res, instance=instance)  # launches only
        assert again.success
        mats2 = materialized(again)
        for decl in decls.campaigns:
            md = mats2[launch_key(decl).to_user_string()]
            assert md["action"] == "noop"
            assert md["provider_campaign_id"] == first[decl.name]["provider_campaign_id"]
            assert len(at_provider(res, decl.provider, md["campaign_key"])) == 1


def test_failing_guard_blocks_the_launch_with_a_readable_reason(tmp_path):
    decls = declarations(max_recipients=1)
    res = resources(tmp_path)
    with dg.instance_for_test() as instance:
        result = dg.materialize(all_assets(decls), resources=res, instance=instance, raise_on_error=False)
        assert not result.success
        evals = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
        for decl in decls.campaigns:
            check = evals[(guard_key(decl).to_user_string(), "book_size")]
            assert not check.passed
            assert "above the declared cap of 1" in (check.description or "")
            assert launch_key(decl).to_user_string() not in materialized(result)
            guard_md = materialized(result)[guard_key(decl).to_user_string()]
            assert "book_size" in guard_md["blocked_by"]
            assert at_provider(res, decl.provider, guard_md["campaign_key"]) == []


def test_ambiguous_outcome_is_a_failure_without_retry_then_adopted(tmp_path):
    from espcore.sandbox import embedded

    decls = Declarations.model_validate({"syncs": SYNCS[:1], "campaigns": CAMPAIGNS[:1]}, context=TEMPLATES)
    res = resources(tmp_path)
    assets = all_assets(decls)
    keys = campaign_asset_keys(decls.campaigns)
    with dg.instance_for_test() as instance:
        dg.materialize(assets[:2], resources=res, instance=instance)  # warehouse + sync (starts the sandbox)
        sandbox = next(sb for (p, _), (sb, _) in embedded._running.items() if p == "sendpulse")
        sandbox.faults.add("status", status=500, path=r"^/campaigns$", method="POST", times=1, after_handler=True)
        result = dg.materialize(assets, selection=keys, resources=res, instance=instance, raise_on_error=False)
        assert not result.success
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert len(failures) == 1
        text = str(failures[0].event_specific_data)
        assert "OUTCOME UNKNOWN" in text
        assert "never resends blindly" in text
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        again = dg.materialize(assets, selection=keys, resources=res, instance=instance)
        md = materialized(again)[launch_key(decls.campaigns[0]).to_user_string()]
        assert md["action"] == "adopted"
        assert len(at_provider(res, "sendpulse", md["campaign_key"])) == 1


def test_occurrence_comes_from_the_tick_the_latest_tick_or_once():
    weekly = CampaignDecl.model_validate(
        {**CAMPAIGNS[1], "schedule": "0 9 * * 1", "execution_timezone": "Europe/Berlin"}, context=TEMPLATES
    )
    one_off = CampaignDecl.model_validate(CAMPAIGNS[1], context=TEMPLATES)
    tick = {SCHEDULED_TAGS[0]: "2026-03-02T08:00:00+00:00"}
    assert occurrence_for(weekly, tick) == "2026-03-02T09:00+01:00"
    wednesday = datetime(2026, 3, 4, 12, tzinfo=UTC)
    assert occurrence_for(weekly, {}, now=wednesday) == "2026-03-02T09:00+01:00"  # same key as the tick
    assert occurrence_for(weekly, {}, "2026-W10") == "2026-W10"
    assert occurrence_for(one_off, {}) == "once"


def test_definitions_have_launch_jobs_schedules_and_no_retries():
    from pipelines.definitions import DECLARATIONS, defs

    scheduled = [d for d in DECLARATIONS.campaigns if d.schedule]
    assert scheduled, "at least one demo campaign is scheduled"
    for decl in DECLARATIONS.campaigns:
        job = defs.resolve_job_def(f"launch_{decl.name}")
        assert job.tags.get("dagster/max_retries") == "0"
        asset = defs.resolve_assets_def(launch_key(decl))
        node = asset.node_def
        assert isinstance(node, dg.OpDefinition)
        assert node.retry_policy is None
        assert asset.specs_by_key[launch_key(decl)].kinds == {decl.provider}
    for decl in scheduled:
        sched = defs.resolve_schedule_def(f"launch_{decl.name}_schedule")
        assert sched.cron_schedule == decl.schedule
        assert sched.execution_timezone == decl.execution_timezone
        tick = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
        with dg.build_schedule_context(scheduled_execution_time=tick) as context:
            requests = list(sched.evaluate_tick(context).run_requests or [])
        assert len(requests) == 1
        occurrence = occurrence_for(decl, {SCHEDULED_TAGS[0]: tick.isoformat()})
        assert requests[0].run_key == f"{decl.name}:{occurrence}"
        guard_op = defs.resolve_assets_def(guard_key(decl)).node_def.name
        assert requests[0].run_config["ops"][guard_op]["config"]["occurrence"] == occurrence


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sync": "nope"}, "campaigns[0] (sp_hello) field sync: no sync named 'nope'"),
        ({"provider": "pakat"}, "campaigns[0] (sp_hello) field provider"),
        ({"html_file": None}, "exactly one of template_id or html_file"),
        ({"html_file": "templates/missing.html"}, "not found"),
        ({"send_at": "tomorrow"}, "send_at"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"schedule": "weekly"}, "cron"),
        ({"require_test_send": True}, "needs test_recipients"),
    ],
)
def test_campaign_yaml_mistakes_name_the_entry_and_field(tmp_path, change, expected):
    import yaml

    from esp_warehouse.config import ConfigError, load_declarations
    from pipelines import PIPELINES_DIR

    shutil.copytree(PIPELINES_DIR / "templates", tmp_path / "templates")  # templates are read beside the file
    path = tmp_path / "syncs.yaml"
    entry = {k: v for k, v in {**CAMPAIGNS[0], **change}.items() if v is not None}
    path.write_text(yaml.safe_dump({"syncs": SYNCS, "campaigns": [entry]}))
    with pytest.raises(ConfigError) as info:
        load_declarations(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    if "field sync" not in expected and "field provider" not in expected:
        assert "campaigns[0] (sp_hello)" in str(info.value)
