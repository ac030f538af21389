"""The follow state machine: subscription, verification of intent, leases,
renewal, backoff, denial, removal, restart (WebSub sections 4, 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import task

from websub_bridge.config import FollowSpec
from websub_bridge.follow import backoff_delay
from websub_bridge.follow._machine import BACKOFF_BASE, RENEW_FRACTION, VERIFICATION_TIMEOUT

from ._follow_kit import no_failures  # noqa: F401 - the fixture
from ._follow_kit import HUB_HTTPS, PUBLIC, TOPIC, HubAnswer, Kit, World

pytestmark = pytest.mark.usefixtures("no_failures")

CALLBACK_PREFIX = PUBLIC + "/websub/callback/"


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path / "websub.db")


def test_a_configured_follow_discovers_then_sends_the_subscription_request(kit: Kit) -> None:
    assert [m for m, _, _ in kit.world.requests][:1] == ["HEAD"]
    (post,) = kit.world.hub_posts
    assert post["hub.mode"] == "subscribe"
    assert post["hub.topic"] == TOPIC
    assert post["hub.callback"].startswith(CALLBACK_PREFIX)
    token = post["hub.callback"][len(CALLBACK_PREFIX):]
    assert len(token) >= 43  # 32 random bytes
    assert "hub.secret" not in post  # an http hub: no secret unless configured
    assert "hub.lease_seconds" not in post  # nothing asked: the hub decides
    follow = kit.follow()
    assert follow.state == "pending"
    assert follow.hub_url == "http://hub.example/hub"
    assert follow.self_url == TOPIC


def test_verification_echoes_exactly_the_challenge_and_activates_the_lease(kit: Kit) -> None:
    callback = kit.world.hub_posts[0]["hub.callback"]
    status, body, headers = kit.call(
        "GET", callback + "?hub.mode=subscribe&hub.topic=" + TOPIC + "&hub.challenge=a%20b%0A&hub.lease_seconds=1000"
    )
    assert (status, body) == (200, b"a b\n")  # exactly, nothing added or removed
    assert headers.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]
    follow = kit.follow()
    assert follow.state == "active"
    assert follow.lease_expires == pytest.approx(kit.clock.seconds() + 1000)


@pytest.mark.parametrize(
    "change",
    [
        {"topic": "http://pub.example/other"},
        {"mode": "unsubscribe"},
    ],
)
def test_verification_for_another_topic_or_mode_is_refused_404(kit: Kit, change: dict[str, str]) -> None:
    callback = kit.world.hub_posts[0]["hub.callback"]
    status, _ = kit.verify(callback, **change)
    assert status == 404
    assert kit.follow().state == "pending"


def test_verification_of_an_unknown_callback_or_an_already_active_one_is_404(kit: Kit) -> None:
    assert kit.verify(CALLBACK_PREFIX + "x" * 43)[0] == 404
    callback = kit.subscribed()
    assert kit.verify(callback)[0] == 404  # no longer pending


def test_verification_without_challenge_or_with_a_bad_lease_is_400(kit: Kit) -> None:
    callback = kit.world.hub_posts[0]["hub.callback"]
    assert kit.verify(callback, challenge=None)[0] == 400
    assert kit.verify(callback, lease="-5")[0] == 400
    assert kit.verify(callback, lease="ten")[0] == 400
    assert kit.follow().state == "pending"


def test_an_https_hub_gets_a_fresh_secret_each_time(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db", world=World(HUB_HTTPS))
    first = kit.world.hub_posts[0]["hub.secret"]
    assert 16 < len(first.encode()) < 200
    kit.verify(kit.world.hub_posts[0]["hub.callback"], lease="100")
    kit.advance(100 * RENEW_FRACTION)
    second = kit.world.hub_posts[1]["hub.secret"]
    assert second != first


def test_an_http_hub_gets_a_secret_only_when_configured(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db", http_secret=True)
    assert "hub.secret" in kit.world.hub_posts[0]


def test_lease_seconds_asked_is_the_follows_own_or_the_default(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "a.db", follows=(FollowSpec(topic=TOPIC, lease_seconds=3600),), lease_seconds=99)
    assert kit.world.hub_posts[0]["hub.lease_seconds"] == "3600"
    kit = Kit(tmp_path / "b.db", lease_seconds=99)
    assert kit.world.hub_posts[0]["hub.lease_seconds"] == "99"


def test_a_hub_that_verifies_before_answering_the_post_is_answered(kit: Kit, tmp_path: Path) -> None:
    world = World()
    answers: list[tuple[int, bytes]] = []
    kit = Kit(tmp_path / "sync.db", world=world, follows=())
    world.before_answer = lambda form: answers.append(kit.verify(form["hub.callback"]))
    kit.run(kit.follower.add(FollowSpec(topic=TOPIC)))
    kit.advance(0)
    assert answers == [(200, b"chal-1234")]
    assert kit.follow().state == "active"
    # Accepted and verified: no verification deadline, no second request.
    kit.advance(VERIFICATION_TIMEOUT + 1)
    assert len(world.hub_posts) == 1


def test_verification_while_the_post_is_still_waiting_for_its_answer(tmp_path: Path) -> None:
    world = World()
    world.hold = True
    kit = Kit(tmp_path / "held.db", world=world)
    assert len(world.held) == 1
    assert kit.subscribed()
    assert kit.follow().state == "active"
    world.release(202)
    kit.pump()
    assert kit.follow().state == "active"
    kit.advance(VERIFICATION_TIMEOUT + 1)
    assert len(world.hub_posts) == 1


@pytest.mark.parametrize("status", [307, 308])
def test_a_307_or_308_is_re_sent_with_the_same_body_to_its_location(tmp_path: Path, status: int) -> None:
    world = World()
    world.answers = [HubAnswer(status, {"Location": "/hub2"})]
    kit = Kit(tmp_path / "r.db", world=world)
    first, second = world.hub_posts
    assert (first["_path"], second["_path"]) == ("/hub", "/hub2")
    assert {k: v for k, v in first.items() if k != "_path"} == {
        k: v for k, v in second.items() if k != "_path"
    }
    assert kit.follow().hub_url == "http://hub.example/hub2"
    kit.subscribed()
    assert kit.follow().state == "active"


def test_a_refusing_hub_is_retried_with_capped_exponential_backoff(tmp_path: Path) -> None:
    world = World()
    world.answers = [HubAnswer(500, body=b"busy\nmore")] * 3
    kit = Kit(tmp_path / "b.db", world=world)
    assert len(world.hub_posts) == 1
    follow = kit.follow()
    assert follow.attempts == 1
    assert follow.last_error == "http://hub.example/hub answered 500: busy"
    assert kit.callbacks() == []  # the refused request's callback is forgotten
    for n, delay in enumerate([BACKOFF_BASE, 2 * BACKOFF_BASE, 4 * BACKOFF_BASE], start=2):
        kit.advance(delay - 0.5)
        assert len(world.hub_posts) == n - 1
        kit.advance(0.5)
        assert len(world.hub_posts) == n
    # The fourth request was accepted: verified, all is well again.
    kit.subscribed()
    follow = kit.follow()
    assert (follow.state, follow.attempts, follow.last_error) == ("active", 0, None)


def test_backoff_is_capped() -> None:
    assert backoff_delay(1) == BACKOFF_BASE
    assert backoff_delay(100) == 3600.0
    assert backoff_delay(1, retry_after=10**9) == 86400.0


def test_retry_after_delays_the_next_attempt(tmp_path: Path) -> None:
    world = World()
    world.answers = [HubAnswer(503, {"Retry-After": "120"})]
    kit = Kit(tmp_path / "ra.db", world=world)
    kit.advance(119)
    assert len(world.hub_posts) == 1
    kit.advance(1)
    assert len(world.hub_posts) == 2


def test_a_hub_that_never_verifies_is_asked_again_with_a_new_callback(kit: Kit) -> None:
    first = kit.world.hub_posts[0]["hub.callback"]
    kit.advance(VERIFICATION_TIMEOUT - 1)
    assert len(kit.world.hub_posts) == 1
    kit.advance(1)
    assert kit.follow().last_error == "the hub did not verify the subscription in time"
    kit.advance(BACKOFF_BASE)
    second = kit.world.hub_posts[1]["hub.callback"]
    assert second != first
    assert kit.verify(first)[0] == 404  # the abandoned request is not confirmed


def test_the_lease_is_renewed_with_a_new_callback_before_it_ends(kit: Kit) -> None:
    old = kit.subscribed()
    kit.advance(1000 * RENEW_FRACTION - 1)
    assert len(kit.world.hub_posts) == 1
    heads = len([r for r in kit.world.requests if r[0] == "HEAD"])
    kit.advance(1)
    assert len([r for r in kit.world.requests if r[0] == "HEAD"]) == heads + 1  # re-discovered
    renewal = kit.world.hub_posts[1]
    new = renewal["hub.callback"]
    assert renewal["hub.mode"] == "subscribe" and new != old
    # Until the new one is verified, the old callback still delivers.
    assert kit.deliver(old, b"still here")[0] == 202
    assert kit.verify(new) == (200, b"chal-1234")
    # Then the old one is unsubscribed, and refuses deliveries with 410.
    unsubscribe = kit.world.hub_posts[2]
    assert (unsubscribe["hub.mode"], unsubscribe["hub.callback"]) == ("unsubscribe", old)
    assert kit.deliver(old, b"late")[0] == 410
    assert kit.verify(old, mode="unsubscribe") == (200, b"chal-1234")
    assert kit.deliver(old, b"later")[0] == 404
    assert kit.deliver(new, b"fresh")[0] == 202
    assert [u.data for u in kit.published()] == ["still here", "fresh"]
    assert kit.follow().state == "active"


def test_a_lease_that_ends_before_any_renewal_succeeds_makes_the_follow_pending(tmp_path: Path) -> None:
    world = World()
    kit = Kit(tmp_path / "e.db", world=world)
    kit.verify(world.hub_posts[0]["hub.callback"], lease="100")
    world.answers = [HubAnswer(500)] * 20
    kit.advance(85)
    assert kit.follow().state == "active"
    kit.advance(20)  # 105 s: expired while retrying
    follow = kit.follow()
    assert follow.state == "pending"
    assert [c.status for c in kit.callbacks()] == []


def test_a_denial_is_recorded_with_its_reason_and_ends_the_attempts(kit: Kit) -> None:
    callback = kit.world.hub_posts[0]["hub.callback"]
    status, _ = kit.verify(callback, mode="denied", challenge=None, lease=None, **{"hub.reason": "not here"})
    assert status == 200
    follow = kit.follow()
    assert (follow.state, follow.denial_reason) == ("denied", "not here")
    kit.advance(10 * VERIFICATION_TIMEOUT)
    assert len(kit.world.hub_posts) == 1
    assert kit.deliver(callback, b"x")[0] == 404


def test_a_denial_of_an_unknown_callback_is_404(kit: Kit) -> None:
    assert kit.verify(CALLBACK_PREFIX + "y" * 43, mode="denied", challenge=None, lease=None)[0] == 404


def test_removing_a_follow_unsubscribes_and_forgets_it_once_verified(kit: Kit) -> None:
    callback = kit.subscribed()
    follow = kit.follow()
    removed = kit.run(kit.follower.remove(follow.id))
    assert removed.state == "unsubscribing"
    unsubscribe = kit.world.hub_posts[-1]
    assert unsubscribe == {
        "hub.callback": callback, "hub.mode": "unsubscribe", "hub.topic": TOPIC, "_path": "/hub",
    }
    assert kit.deliver(callback, b"x")[0] == 410
    assert kit.verify(callback, mode="subscribe")[0] == 404
    assert kit.verify(callback, mode="unsubscribe") == (200, b"chal-1234")
    assert kit.follows() == []
    assert kit.callbacks() == []


def test_an_unanswered_unsubscribe_is_retried_then_given_up(kit: Kit) -> None:
    kit.subscribed()
    kit.world.answers = [HubAnswer(500)] * 10
    kit.run(kit.follower.remove(kit.follow().id))
    for _ in range(10):
        kit.advance(3600)
    modes = [p["hub.mode"] for p in kit.world.hub_posts]
    assert modes == ["subscribe"] + ["unsubscribe"] * 5
    assert kit.follows() == []


def test_removing_a_pending_follow_sends_nothing_and_refuses_the_late_verification(kit: Kit) -> None:
    callback = kit.world.hub_posts[0]["hub.callback"]
    kit.run(kit.follower.remove(kit.follow().id))
    assert len(kit.world.hub_posts) == 1
    assert kit.follows() == []
    assert kit.verify(callback)[0] == 404


def test_a_restart_keeps_the_subscription_and_its_renewal_time(tmp_path: Path) -> None:
    db = tmp_path / "websub.db"
    kit = Kit(db)
    callback = kit.subscribed()
    kit.advance(500)
    kit.stop()
    world = World()
    again = Kit(db, world=world, clock=kit.clock)
    assert world.hub_posts == []  # still subscribed: nothing to ask
    assert again.follow().state == "active"
    assert again.deliver(callback, b"after restart")[0] == 202
    again.advance(1000 * RENEW_FRACTION - 500)
    assert len(world.hub_posts) == 1  # renewed on the original schedule


def test_a_follow_removed_from_the_configuration_is_unsubscribed_at_start(tmp_path: Path) -> None:
    db = tmp_path / "websub.db"
    kit = Kit(db)
    callback = kit.subscribed()
    kit.stop()
    world = World()
    again = Kit(db, world=world, follows=(), clock=kit.clock)
    (post,) = world.hub_posts
    assert (post["hub.mode"], post["hub.callback"]) == ("unsubscribe", callback)
    assert again.follow().state == "unsubscribing"


def test_a_request_pending_at_a_restart_is_asked_again(tmp_path: Path) -> None:
    db = tmp_path / "websub.db"
    kit = Kit(db)
    stale = kit.world.hub_posts[0]["hub.callback"]
    kit.stop()
    world = World()
    again = Kit(db, world=world, clock=kit.clock)
    (post,) = world.hub_posts
    assert post["hub.mode"] == "subscribe" and post["hub.callback"] != stale
    assert again.verify(stale)[0] == 404


def test_an_unsubscription_pending_at_a_restart_is_sent_again(tmp_path: Path) -> None:
    db = tmp_path / "websub.db"
    kit = Kit(db, follows=())
    kit.run(kit.follower.add(FollowSpec(topic=TOPIC)))
    kit.advance(0)
    callback = kit.subscribed()
    kit.run(kit.follower.remove(kit.follow().id))
    kit.stop()
    world = World()
    again = Kit(db, world=world, follows=(), clock=kit.clock)
    (post,) = world.hub_posts
    assert (post["hub.mode"], post["hub.callback"]) == ("unsubscribe", callback)
    assert again.verify(callback, mode="unsubscribe") == (200, b"chal-1234")
    assert again.follows() == []


def test_a_topic_without_a_hub_is_retried_with_backoff(tmp_path: Path) -> None:
    world = World()
    world.hub_url = ""
    kit = Kit(tmp_path / "n.db", world=world)
    follow = kit.follow()
    assert follow.attempts == 1 and follow.last_error is not None
    assert "hub" in follow.last_error
    assert world.hub_posts == []
    heads = len(world.requests)
    kit.advance(BACKOFF_BASE)
    assert len(world.requests) > heads  # discovered again


def test_a_redirect_from_an_https_hub_to_http_never_carries_the_secret(tmp_path: Path) -> None:
    world = World(HUB_HTTPS)
    world.answers = [HubAnswer(307, {"Location": "http://hub.example/hub2"})]
    kit = Kit(tmp_path / "s.db", world=world)
    assert [p["_path"] for p in world.hub_posts] == ["/hub"]
    assert "https to http" in (kit.follow().last_error or "")
    assert kit.callbacks() == []


def test_retry_after_as_an_http_date(tmp_path: Path) -> None:
    import email.utils

    clock = task.Clock()
    clock.advance(1_800_000_000)
    world = World()
    world.answers = [HubAnswer(503, {"Retry-After": email.utils.formatdate(1_800_000_000 + 300, usegmt=True)})]
    kit = Kit(tmp_path / "d.db", world=world, clock=clock)
    kit.advance(299)
    assert len(world.hub_posts) == 1
    kit.advance(1)
    assert len(world.hub_posts) == 2


def test_a_renewal_due_while_the_request_is_still_out_is_not_lost(tmp_path: Path) -> None:
    world = World()
    world.hold = True
    kit = Kit(tmp_path / "short.db", world=world)
    callback = world.hub_posts[0]["hub.callback"]
    assert kit.verify(callback, lease="1") == (200, b"chal-1234")
    kit.advance(1)  # the renewal falls due while our request waits for its answer
    assert len(world.hub_posts) == 1
    world.release(202)
    kit.pump()
    kit.advance(1)
    assert len(world.hub_posts) == 2  # renewed all the same


def test_the_topic_is_the_whole_self_url_query_included(tmp_path: Path) -> None:
    world = World()
    world.self_url = TOPIC + "?format=atom&key=abc"
    kit = Kit(tmp_path / "q.db", world=world)
    callback = world.hub_posts[0]["hub.callback"]
    assert world.hub_posts[0]["hub.topic"] == world.self_url
    assert kit.verify(callback, topic=TOPIC)[0] == 404
    assert kit.verify(callback, topic=world.self_url) == (200, b"chal-1234")
    kit.deliver(callback, b"doc")
    assert kit.published()[0].topics == (world.self_url,)
