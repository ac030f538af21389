"""Callback URLs are capabilities: the access log never shows their token."""

from __future__ import annotations

from mercure_twisted.logs import redact, register_capability_prefix


def test_the_segment_after_a_registered_capability_prefix_is_redacted() -> None:
    register_capability_prefix("/websub/callback")
    line = '127.0.0.1 "GET /websub/callback/Abc-_123?hub.mode=subscribe HTTP/1.1" 200'
    assert redact(line) == '127.0.0.1 "GET /websub/callback/REDACTED?hub.mode=subscribe HTTP/1.1" 200'
    assert redact("POST /websub/callback/Abc-_123") == "POST /websub/callback/REDACTED"
    assert redact("GET /websub/follows/3") == "GET /websub/follows/3"
