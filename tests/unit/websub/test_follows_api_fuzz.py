"""Property: whatever arrives on /websub/..., the answer is precise, never a 500,
and nothing is published or followed by a request that was refused."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._follow_kit import PUBLIC, Kit, draft07_token

EXPECTED = {200, 201, 202, 400, 401, 403, 404, 405, 409, 410, 413, 415}
_KIT: list[Kit] = []


def kit() -> Kit:
    if not _KIT:
        _KIT.append(Kit(Path(tempfile.mkdtemp()) / "websub.db"))
        _KIT[0].subscribed()
    return _KIT[0]


texts = st.text(max_size=40)
query = st.lists(
    st.tuples(st.sampled_from(["hub.mode", "hub.topic", "hub.challenge", "hub.lease_seconds", "hub.reason", "x"]),
              st.one_of(texts, st.sampled_from(["subscribe", "unsubscribe", "denied", "http://pub.example/feed"]))),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
    path=st.one_of(
        st.sampled_from(["/websub/follows", "/websub/follows/1", "/websub/follows/x", "/websub/"]),
        texts.map(lambda t: "/websub/callback/" + quote(t, safe="")),
        texts.map(lambda t: "/websub/follows/" + quote(t, safe="")),
    ),
    pairs=query,
    body=st.binary(max_size=200),
    content_type=st.sampled_from([None, "application/json", "application/x-www-form-urlencoded", "text/xml"]),
    signature=st.one_of(st.none(), st.text(max_size=30)),
    authorized=st.booleans(),
)
def test_no_request_makes_a_500(
    method: str, path: str, pairs: list[tuple[str, str]], body: bytes,
    content_type: str | None, signature: str | None, authorized: bool,
) -> None:
    k = kit()
    headers: dict[bytes, list[bytes]] = {}
    if content_type:
        headers[b"Content-Type"] = [content_type.encode()]
    if signature is not None and signature.isascii() and signature.isprintable():
        headers[b"X-Hub-Signature"] = [signature.encode()]
    if authorized:
        headers[b"Authorization"] = [f"Bearer {draft07_token(publish=['https://nothing.example/'])}".encode()]
    url = PUBLIC + path
    if pairs:
        url += "?" + "&".join(f"{quote(n)}={quote(v)}" for n, v in pairs)
    before = len(k.published())
    status, _, _ = k.call(method, url, data=body, headers=headers)
    assert status in EXPECTED
    if status >= 400:
        assert len(k.published()) == before
    # The one follow stays as it was: no token here grants its topic.
    assert [f.topic for f in k.follows()] == ["http://pub.example/feed"]
