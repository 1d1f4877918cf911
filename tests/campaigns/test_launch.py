"""Launch idempotency (docs/sync-semantics.md §8) against the three sandboxes: exactly one provider campaign per key,
whatever is killed, timed out or re-run."""

from datetime import datetime

import pytest

from espcore.campaigns.launch import (
    LaunchDeferred,
    LaunchOutcomeUnknown,
    LaunchRefused,
    finish_draft,
    launch,
    poll,
    send_test,
)
from espcore.campaigns.spec import campaign_key, key_of, provider_name, render_body
from espcore.providers.base import CampaignState
from tests.campaigns.conftest import Env, Killed

# -- key and name ------------------------------------------------------------------------------------------------


def test_key_is_stable_canonical_and_sensitive_to_the_intent():
    base = dict(provider="sendpulse", book="Readers", template="t.html", subject="Hi", occurrence="2026-03-02")
    k = campaign_key(**base, slug="spring")
    assert len(k) == 16
    assert int(k, 16) >= 0
    assert campaign_key(**dict(reversed(list(base.items()))), slug="spring") == k  # order-free (canonical JSON)
    for field, value in [("occurrence", "2026-03-09"), ("subject", "Hi!"), ("book", "Other"), ("provider", "pakat")]:
        assert campaign_key(**{**base, field: value}, slug="spring") != k
    name = provider_name("A very long title " * 10, k)
    assert name.endswith(f"ck-{k}")
    assert len(name) <= 100
    assert key_of(name) == k


def test_body_is_rendered_with_autoescape(tmp_path):
    j2 = tmp_path / "b.html.j2"
    j2.write_text("<p>Hello {{ who }}</p>")
    assert render_body(j2, {"who": "<script>x</script>"}) == "<p>Hello &lt;script&gt;x&lt;/script&gt;</p>"
    plain = tmp_path / "b.html"
    plain.write_text("<p>Hello $who</p>")
    assert render_body(plain, {"who": "a&b"}) == "<p>Hello a&amp;b</p>"


# -- happy path --------------------------------------------------------------------------------------------------


def test_launch_creates_exactly_one_campaign_and_relaunch_is_a_noop(env: Env):
    spec = env.spec()
    first = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id, run_id="r1")
    assert first.action == "created"
    assert first.status == "sent"
    assert first.campaign.name.endswith(f"ck-{spec.key}")
    assert first.campaign.state in (CampaignState.PENDING, CampaignState.SENT)
    row = env.ledger.get(spec.key)
    assert row is not None
    assert (row.status, row.provider_campaign_id, row.attempts) == ("sent", first.campaign.id, 1)
    for _ in range(3):
        again = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id, run_id="r2")
        assert (again.action, again.campaign.id) == ("noop", first.campaign.id)
    assert [c.id for c in env.at_provider(spec.key)] == [first.campaign.id]
    # another occurrence is another key, hence another campaign
    other = launch(env.spec("2026-03-09"), env.h.adapter, env.ledger, book_id=env.book_id)
    assert other.campaign.id != first.campaign.id


def test_ledger_rows_are_kept_per_named_account(env: Env):
    """Two accounts of one provider: the ledger (and the hourly cap counted from it) is the account's own."""
    env.h.adapter.account = f"{env.h.name}_eu"
    spec = env.spec(provider=f"{env.h.name}_eu")
    launch(spec, env.h.adapter, env.ledger, book_id=env.book_id, run_id="r1")
    row = env.ledger.get(spec.key)
    assert row is not None
    assert row.provider == f"{env.h.name}_eu"
    since = datetime(2000, 1, 1)
    assert env.ledger.posts_since(f"{env.h.name}_eu", since)[0] == 1
    assert env.ledger.posts_since(env.h.name, since)[0] == 0


def test_lost_ledger_is_recovered_by_look_up(env: Env, tmp_path):
    spec = env.spec()
    first = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    from espcore.campaigns.ledger import Ledger
    from espcore.warehouse import Warehouse

    fresh = Ledger(Warehouse(tmp_path / "other.duckdb"), now=lambda: env.h.now)  # the ledger is gone
    again = launch(spec, env.h.adapter, fresh, book_id=env.book_id)
    assert (again.action, again.campaign.id) == ("adopted", first.campaign.id)
    assert len(env.at_provider(spec.key)) == 1


# -- kill at every step -----------------------------------------------------------------------------------------


def killer(at: str):
    def hook(step: str) -> None:
        if step == at:
            raise Killed(step)

    return hook


@pytest.mark.parametrize("step", ["start", "planned", "looked_up"])
def test_kill_before_posting_then_rerun_creates_one(env: Env, step: str):
    spec = env.spec()
    with pytest.raises(Killed):
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id, hook=killer(step))
    assert env.at_provider(spec.key) == []  # nothing posted
    row = env.ledger.get(spec.key)
    assert row is None or row.status == "planned"
    result = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert result.action == "created"
    assert len(env.at_provider(spec.key)) == 1


def test_kill_after_posting_before_the_post_never_resends_blindly(env: Env):
    spec = env.spec()
    with pytest.raises(Killed):
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id, hook=killer("posting"))
    assert env.ledger.get(spec.key).status == "posting"  # type: ignore[union-attr]
    # the re-run cannot know whether the POST left: it looks up, finds nothing, and stops for an operator
    with pytest.raises(LaunchOutcomeUnknown) as info:
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert "lists no campaign ending" in str(info.value)
    assert env.ledger.get(spec.key).status == "unknown"  # type: ignore[union-attr]
    with pytest.raises(LaunchOutcomeUnknown):  # and again, until someone decides
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert env.at_provider(spec.key) == []
    env.ledger.resolve(spec.key, "planned", note="checked the provider UI: nothing went out")
    assert launch(spec, env.h.adapter, env.ledger, book_id=env.book_id).action == "created"
    assert len(env.at_provider(spec.key)) == 1


@pytest.mark.parametrize("step", ["posted", "recorded"])
def test_kill_after_the_post_then_rerun_adopts(env: Env, step: str):
    spec = env.spec()
    with pytest.raises(Killed):
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id, hook=killer(step))
    created = env.at_provider(spec.key)
    assert len(created) == 1
    again = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert again.action == ("adopted" if step == "posted" else "noop")
    assert again.campaign.id == created[0].id
    assert [c.id for c in env.at_provider(spec.key)] == [created[0].id]
    assert env.ledger.get(spec.key).status == "sent"  # type: ignore[union-attr]


CREATE_PATH = {"sendpulse": r"^/campaigns$", "pakat": r"/campaigns$", "litestartup": r"/campaigns$"}


@pytest.mark.parametrize("fault", ["timeout", "reset", "status"])
def test_ambiguous_outcome_after_the_request_took_effect_is_unknown_then_adopted(env: Env, fault: str):
    spec = env.spec()
    env.h.sandbox.faults.add(fault, path=CREATE_PATH[env.h.name], method="POST", times=1, after_handler=True)
    with pytest.raises(LaunchOutcomeUnknown) as info:
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert "unknown" in str(info.value)
    row = env.ledger.get(spec.key)
    assert row is not None
    assert row.status == "unknown"
    assert row.error_kind == "unknown_outcome"
    assert len(env.at_provider(spec.key)) == 1  # it did take effect (as a draft for Pakat/LiteStartup)
    again = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert again.action == "adopted"
    assert len(env.at_provider(spec.key)) == 1  # never resent
    assert again.campaign.state in (CampaignState.PENDING, CampaignState.SENT)  # a draft was finished
    assert launch(spec, env.h.adapter, env.ledger, book_id=env.book_id).action == "noop"


def test_timeout_before_the_request_took_effect_is_unknown_and_stops(env: Env):
    spec = env.spec()
    env.h.sandbox.faults.add("timeout", path=CREATE_PATH[env.h.name], method="POST", times=1)
    with pytest.raises(LaunchOutcomeUnknown):
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    with pytest.raises(LaunchOutcomeUnknown):  # not found by look-up: stays unknown, nothing resent
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert env.at_provider(spec.key) == []


def test_pakat_draft_left_behind_is_launched_not_created_again(tmp_path):
    from tests.campaigns.conftest import make_env

    with make_env("pakat", tmp_path) as env:
        spec = env.spec()
        adapter = env.h.adapter
        real_launch = adapter.launch  # type: ignore[attr-defined]

        def dies(campaign_id: str) -> None:
            raise Killed("between the draft POST and the launch PUT")

        adapter.launch = dies  # type: ignore[attr-defined]
        with pytest.raises(Killed):
            launch(spec, adapter, env.ledger, book_id=env.book_id)
        adapter.launch = real_launch  # type: ignore[attr-defined]
        (draft,) = env.at_provider(spec.key)
        assert adapter.get_campaign(draft.id).state is CampaignState.DRAFT
        result = launch(spec, adapter, env.ledger, book_id=env.book_id)
        assert result.action == "adopted"
        assert result.campaign.id == draft.id
        assert result.campaign.state is CampaignState.PENDING
        assert any("draft" in n for n in result.notes)
        assert len(env.at_provider(spec.key)) == 1


def test_litestartup_draft_left_behind_is_sent_not_created_again(tmp_path):
    from tests.campaigns.conftest import make_env

    with make_env("litestartup", tmp_path) as env:
        spec = env.spec()
        client = env.h.adapter.client  # type: ignore[attr-defined]
        real_send = client.send_campaign

        def dies(campaign_id: str):
            raise Killed("between the draft POST and /send")

        client.send_campaign = dies
        with pytest.raises(Killed):
            launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
        client.send_campaign = real_send
        (draft,) = env.at_provider(spec.key)
        assert draft.state is CampaignState.DRAFT
        result = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
        assert (result.action, result.campaign.id) == ("adopted", draft.id)
        assert result.campaign.state in (CampaignState.PENDING, CampaignState.SENT)
        assert len(env.at_provider(spec.key)) == 1
        # finish_draft on a campaign that is no longer a draft is harmless for the caller to avoid: launch never
        # calls it then (the state is checked first)
        assert finish_draft is not None


# -- polling ------------------------------------------------------------------------------------------------------


def test_poll_reaches_terminal_on_the_sandbox_clock_and_a_kill_while_polling_changes_nothing(env: Env):
    spec = env.spec()
    result = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    with pytest.raises(Killed):
        poll(
            env.h.adapter, result.campaign.id, timeout_s=3600, interval_s=600, sleep=env.h.advance, hook=killer("poll")
        )
    again = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    assert again.action == "noop"
    polled = poll(env.h.adapter, again.campaign.id, timeout_s=2 * 86400, interval_s=1800, sleep=env.h.advance)
    assert polled.terminal
    assert polled.campaign.state is CampaignState.SENT
    assert polled.stats is not None
    assert polled.stats.sent == 12
    assert len(env.at_provider(spec.key)) == 1


def test_poll_times_out_without_cancelling(env: Env):
    spec = env.spec()
    result = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
    slept: list[float] = []
    polled = poll(env.h.adapter, result.campaign.id, timeout_s=20, interval_s=10, sleep=slept.append)
    assert slept == [10, 10]  # no real sleeping: the injected sleep is called, timeout counted in intervals
    assert polled.polls == 3
    if not polled.terminal:
        assert polled.campaign.state is CampaignState.PENDING


# -- quota ---------------------------------------------------------------------------------------------------------


def test_sendpulse_791_after_four_creates_goes_back_to_planned(sp_env: Env):
    env = sp_env
    for day in range(4):
        assert launch(env.spec(f"2026-03-0{day + 2}"), env.h.adapter, env.ledger, book_id=env.book_id).action == (
            "created"
        )
    fifth = env.spec("2026-03-09")
    with pytest.raises(LaunchDeferred) as info:
        launch(fifth, env.h.adapter, env.ledger, book_id=env.book_id)
    msg = str(info.value)
    assert "quota" in msg
    assert "planned" in msg
    assert "791" in msg
    row = env.ledger.get(fifth.key)
    assert row is not None
    assert (row.status, row.error_kind) == ("planned", "quota")
    assert "per hour" in (row.last_error or "")
    assert env.at_provider(fifth.key) == []
    env.h.advance(3601)  # a later tick
    assert launch(fifth, env.h.adapter, env.ledger, book_id=env.book_id).action == "created"
    assert len(env.at_provider(fifth.key)) == 1


def test_failed_quota_row_is_replanned_and_other_refusals_wait_for_an_operator(env: Env):
    spec = env.spec()
    env.ledger.plan(
        spec.key,
        provider=env.h.name,
        book_id=env.book_id,
        campaign_name=spec.name,
        occurrence=spec.occurrence,
        provider_name=spec.provider_name,
    )
    env.ledger.transition(spec.key, "failed", error_kind="quota", last_error="balance exhausted")
    assert launch(spec, env.h.adapter, env.ledger, book_id=env.book_id).action == "created"

    other = env.spec("2026-04-01", subject="")  # a definite 422 everywhere
    with pytest.raises(LaunchRefused) as info:
        launch(other, env.h.adapter, env.ledger, book_id=env.book_id)
    assert "nothing was sent" in str(info.value).lower()
    assert env.ledger.get(other.key).status == "failed"  # type: ignore[union-attr]
    with pytest.raises(LaunchRefused, match="refused earlier"):
        launch(other, env.h.adapter, env.ledger, book_id=env.book_id)
    assert env.at_provider(other.key) == []


# -- test sends ----------------------------------------------------------------------------------------------------


def test_test_send_is_recorded_and_never_mistaken_for_the_launch(env: Env):
    spec = env.spec()
    what = send_test(spec, env.h.adapter, env.ledger, book_id=env.book_id, recipients=["qa@example.org"])
    assert "qa@example.org" in what
    row = env.ledger.get(spec.key)
    assert row is not None
    assert row.test_sent_at is not None
    assert row.status == "planned"
    assert env.h.adapter.find_campaign(f"ck-{spec.key}") is None
    assert launch(spec, env.h.adapter, env.ledger, book_id=env.book_id).action == "created"


def test_litestartup_quota_refusal_leaves_a_draft_that_the_next_tick_sends(tmp_path):
    from tests.campaigns.conftest import make_env

    with make_env("litestartup", tmp_path) as env:
        spec = env.spec()
        env.h.sandbox.hook("set_usage", monthly=10**9, daily=10**9)
        with pytest.raises(LaunchDeferred, match="quota"):
            launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
        row = env.ledger.get(spec.key)
        assert row is not None
        assert (row.status, row.error_kind) == ("planned", "quota")
        (draft,) = env.at_provider(spec.key)
        assert draft.state is CampaignState.DRAFT  # created, never sent
        env.h.sandbox.hook("set_usage", monthly=0, daily=0)
        result = launch(spec, env.h.adapter, env.ledger, book_id=env.book_id)
        assert (result.action, result.campaign.id) == ("adopted", draft.id)
        assert result.campaign.state in (CampaignState.PENDING, CampaignState.SENT)
        assert len(env.at_provider(spec.key)) == 1


def test_a_concurrent_claim_between_look_up_and_posting_posts_nothing(env: Env):
    from espcore.campaigns.launch import LaunchConcurrent
    from espcore.campaigns.ledger import LedgerConflict

    spec = env.spec()

    def other_run_wins(step: str) -> None:
        if step == "looked_up":  # a second scheduler got there first
            env.ledger.transition(spec.key, "posting", expect=("planned",), run_id="other")

    with pytest.raises(LaunchConcurrent, match="claimed by another run"):
        launch(spec, env.h.adapter, env.ledger, book_id=env.book_id, hook=other_run_wins)
    assert env.at_provider(spec.key) == []
    with pytest.raises(LedgerConflict):
        env.ledger.transition(spec.key, "posting", expect=("planned",))
