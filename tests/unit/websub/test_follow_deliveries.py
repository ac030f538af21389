"""Content distribution on our callbacks (WebSub section 7): signatures,
bounds, and what reaches Mercure, document by document or entry by entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from websub_bridge.config import FollowSpec

from ._follow_kit import no_failures  # noqa: F401 - the fixture
from ._follow_kit import HUB_HTTPS, PUBLIC, TOPIC, Kit, World, atom, sign

pytestmark = pytest.mark.usefixtures("no_failures")

ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


def signed_kit(tmp_path: Path, **kw: object) -> tuple[Kit, str, str]:
    kit = Kit(tmp_path / "websub.db", world=World(HUB_HTTPS), **kw)  # type: ignore[arg-type]
    post = kit.world.hub_posts[0]
    kit.subscribed()
    return kit, post["hub.callback"], post["hub.secret"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_correctly_signed_delivery_is_published(tmp_path: Path, algorithm: str) -> None:
    kit, callback, secret = signed_kit(tmp_path)
    body = b"<feed>new</feed>"
    status, _ = kit.deliver(callback, body, X_Hub_Signature=sign(algorithm, secret, body))
    assert 200 <= status < 300
    (update,) = kit.published()
    assert update.data == "<feed>new</feed>"
    assert update.topics == (TOPIC,)  # default: the discovered rel=self
    assert update.private is False


def test_upper_case_hex_and_algorithm_are_accepted(tmp_path: Path) -> None:
    kit, callback, secret = signed_kit(tmp_path)
    body = b"payload"
    method, _, digest = sign("sha256", secret, body).partition("=")
    status, _ = kit.deliver(callback, body, X_Hub_Signature=method.upper() + "=" + digest.upper())
    assert status == 202
    assert [u.data for u in kit.published()] == ["payload"]


def test_a_mismatching_signature_is_acknowledged_but_nothing_is_published(tmp_path: Path) -> None:
    kit, callback, secret = signed_kit(tmp_path)
    status, _ = kit.deliver(callback, b"forged", X_Hub_Signature=sign("sha256", secret, b"other"))
    assert 200 <= status < 300
    status, _ = kit.deliver(callback, b"forged", X_Hub_Signature=sign("sha256", "wrong-secret", b"forged"))
    assert 200 <= status < 300
    assert kit.published() == []


def test_a_missing_signature_where_a_secret_was_given_is_refused(tmp_path: Path) -> None:
    kit, callback, _ = signed_kit(tmp_path)
    status, body = kit.deliver(callback, b"unsigned")
    assert status == 403
    assert b"X-Hub-Signature" in body
    assert kit.published() == []


def test_an_unsupported_signature_algorithm_is_refused(tmp_path: Path) -> None:
    kit, callback, secret = signed_kit(tmp_path)
    status, _ = kit.deliver(callback, b"x", X_Hub_Signature="md5=" + "0" * 32)
    assert status == 400
    assert kit.published() == []


def test_without_a_secret_an_unsigned_delivery_is_published(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db")
    callback = kit.subscribed()
    assert kit.deliver(callback, b"plain")[0] == 202
    assert [u.data for u in kit.published()] == ["plain"]


def test_an_oversized_body_is_413_and_nothing_is_published(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db", max_body_size=100)
    callback = kit.subscribed()
    status, body = kit.deliver(callback, b"x" * 101)
    assert status == 413
    assert b"100 bytes" in body
    assert kit.deliver(callback, b"x" * 100)[0] == 202
    assert len(kit.published()) == 1


def test_unknown_and_malformed_callbacks_are_404(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db")
    kit.subscribed()
    assert kit.deliver(PUBLIC + "/websub/callback/" + "z" * 43, b"x")[0] == 404
    assert kit.deliver(PUBLIC + "/websub/callback/has.a.dot", b"x")[0] == 404
    assert kit.deliver(PUBLIC + "/websub/callback/", b"x")[0] == 404
    assert kit.published() == []


def test_a_delivery_before_verification_is_not_published(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db")
    callback = kit.world.hub_posts[0]["hub.callback"]
    assert kit.deliver(callback, b"early")[0] == 404
    assert kit.published() == []


def test_link_headers_of_a_delivery_do_not_choose_the_subscription(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db")
    callback = kit.subscribed()
    status, _ = kit.deliver(callback, b"doc", Link='<http://evil.example/x>; rel="self"')
    assert status == 202
    assert kit.published()[0].topics == (TOPIC,)


def test_mercure_topic_and_private_are_applied(tmp_path: Path) -> None:
    kit = Kit(
        tmp_path / "websub.db",
        follows=(FollowSpec(topic=TOPIC, mercure_topic="https://app.example/news", private=True),),
    )
    callback = kit.subscribed()
    kit.deliver(callback, b"doc")
    (update,) = kit.published()
    assert update.topics == ("https://app.example/news",)
    assert update.private is True


def test_a_document_in_its_declared_charset_is_decoded_and_undecodable_text_is_415(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "websub.db")
    callback = kit.subscribed()
    assert kit.deliver(callback, "é".encode("latin-1"), Content_Type="text/plain; charset=iso-8859-1")[0] == 202
    assert kit.deliver(callback, b"\xff\xfe\xfa", Content_Type="text/plain")[0] == 415
    assert [u.data for u in kit.published()] == ["é"]


def entries_kit(db: Path, **kw: object) -> Kit:
    return Kit(db, follows=(FollowSpec(topic=TOPIC, mode="entries"),), **kw)  # type: ignore[arg-type]


def test_entries_mode_publishes_each_new_entry_once_with_its_id(tmp_path: Path) -> None:
    kit = entries_kit(tmp_path / "websub.db")
    callback = kit.subscribed()
    two = atom(("urn:e:2", "second"), ("urn:e:1", "first"))
    assert kit.deliver(callback, two, Content_Type="application/atom+xml")[0] == 202
    updates = kit.published()
    assert [u.id for u in updates] == ["urn:e:1", "urn:e:2"]  # oldest first
    assert "<title>first</title>" in updates[0].data
    three = atom(("urn:e:3", "third"), ("urn:e:2", "second"), ("urn:e:1", "first"))
    kit.deliver(callback, three, Content_Type="application/atom+xml")
    assert [u.id for u in kit.published()] == ["urn:e:1", "urn:e:2", "urn:e:3"]


def test_entries_seen_before_a_restart_are_not_published_again(tmp_path: Path) -> None:
    db = tmp_path / "websub.db"
    kit = entries_kit(db)
    callback = kit.subscribed()
    feed = atom(("urn:e:1", "first"))
    kit.deliver(callback, feed, Content_Type="application/atom+xml")
    kit.stop()
    again = entries_kit(db, clock=kit.clock)
    assert again.deliver(callback, feed, Content_Type="application/atom+xml")[0] == 202
    assert again.published() == []  # the new process's hub got nothing old
    more = atom(("urn:e:2", "second"), ("urn:e:1", "first"))
    again.deliver(callback, more, Content_Type="application/atom+xml")
    assert [u.id for u in again.published()] == ["urn:e:2"]


def test_an_entry_id_mercure_cannot_take_is_replaced_by_a_stable_derived_one(tmp_path: Path) -> None:
    kit = entries_kit(tmp_path / "websub.db")
    callback = kit.subscribed()
    kit.deliver(callback, atom(("#fragment-id", "x")), Content_Type="application/atom+xml")
    (update,) = kit.published()
    assert update.id.startswith("urn:sha256:")


def test_entries_mode_refuses_what_is_not_a_feed(tmp_path: Path) -> None:
    kit = entries_kit(tmp_path / "websub.db")
    callback = kit.subscribed()
    status, _ = kit.deliver(callback, b"<html><body>hi</body></html>", Content_Type="text/html")
    assert status == 400
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>&lol2;</id></entry></feed>'
    )
    status, _ = kit.deliver(callback, bomb, Content_Type="application/atom+xml")
    assert status == 400
    assert kit.published() == []
