"""Discovery (WebSub section 4) against real twisted.web resources, in memory."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from twisted.web.server import Request

from websub_bridge.discovery import Discovery, DiscoveryError, discover
from websub_bridge.guard import GuardError

from ._outbound_kit import Kit, Routes

Handler = Callable[[Request], bytes | int]


def page(
    body: bytes = b"",
    *,
    content_type: str = "text/html",
    links: tuple[str, ...] = (),
    status: int = 200,
    location: str | None = None,
) -> Handler:
    def handler(request: Request) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", content_type.encode())
        if links:
            request.responseHeaders.setRawHeaders(b"link", [link.encode() for link in links])
        if location is not None:
            request.setHeader(b"location", location.encode())
        return body

    return handler


def run(routes: dict[str, Handler], url: str = "http://example.com/feed") -> tuple[Discovery, Routes]:
    resource = Routes(routes)
    kit = Kit(resource)
    return kit.run(discover(kit.client, url)), resource


def fails(routes: dict[str, Handler], url: str = "http://example.com/feed") -> BaseException:
    kit = Kit(Routes(routes))
    return kit.fail(discover(kit.client, url))


def methods(resource: Routes) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _, _ in resource.seen]


HTML = b"""<!doctype html>
<html>
 <head>
  <title>A blog</title>
  <meta charset="utf-8">
  <link rel="stylesheet" href="/style.css">
  <link rel="hub" href="https://hub.example.net/">
  <link rel="self" href="http://example.com/feed">
 </head>
 <body><p>hello</p><link rel="hub" href="https://evil.example.org/"></body>
</html>"""


def test_head_with_hub_and_self_link_headers_settles_it_without_a_get() -> None:
    found, resource = run(
        {"/feed": page(HTML, links=('<https://hub.example.net/>; rel="hub"', '</feed>; rel="self"'))}
    )
    assert found == Discovery(
        topic="http://example.com/feed",
        self_url="http://example.com/feed",
        hubs=("https://hub.example.net/",),
        content_type="text/html",
    )
    assert methods(resource) == [("HEAD", "/feed")]


def test_head_without_links_falls_back_to_get_and_its_link_headers() -> None:
    calls: list[str] = []

    def handler(request: Request) -> bytes:
        calls.append(request.method.decode())
        if request.method == b"GET":
            request.responseHeaders.setRawHeaders(
                b"link", [b"<https://hub.example.net/>; rel=hub, </feed>; rel=self"]
            )
        return b"plain"

    found, resource = run({"/feed": handler})
    assert calls == ["HEAD", "GET"]
    assert found.hubs == ("https://hub.example.net/",)
    assert found.self_url == "http://example.com/feed"


def test_head_refused_by_the_server_is_not_fatal() -> None:
    def handler(request: Request) -> bytes:
        if request.method == b"HEAD":
            request.setResponseCode(405)
            return b""
        request.setHeader(b"content-type", b"text/html")
        return HTML

    found, _ = run({"/feed": handler})
    assert found.hubs == ("https://hub.example.net/",)


def test_link_headers_several_headers_comma_lists_rel_tokens_quoted_or_not() -> None:
    links = (
        '</style.css>; rel=stylesheet, <https://hub-a.example.net/>; rel="hub"',
        "<hub-b>; title=\"x, y; z\"; rel='ignored'",  # single quotes are not quoting
        '<http://hub-c.example.net/>;rel=hub',
        '</feed?a=1>; rel="alternate self"',
    )
    found, _ = run({"/dir/feed": page(links=links)}, "http://example.com/dir/feed")
    assert found.hubs == ("https://hub-a.example.net/", "http://hub-c.example.net/")
    assert found.self_url == "http://example.com/feed?a=1"


def test_relative_link_headers_are_resolved_against_the_final_url() -> None:
    found, _ = run(
        {
            "/old": page(status=301, location="/new/feed"),
            "/new/feed": page(links=("<../hub>; rel=hub", "<feed.xml>; rel=self")),
        },
        "http://example.com/old",
    )
    assert found.topic == "http://example.com/new/feed"
    assert found.hubs == ("http://example.com/hub",)
    assert found.self_url == "http://example.com/new/feed.xml"


def test_link_headers_win_over_embedded_links() -> None:
    found, _ = run({"/feed": page(HTML, links=("<https://header-hub.example/>; rel=hub",))})
    assert found.hubs == ("https://header-hub.example/",)
    # No self in the headers: the document's own self link completes it.
    assert found.self_url == "http://example.com/feed"


def test_html_links_are_read_from_the_head_only() -> None:
    found, resource = run({"/feed": page(HTML)})
    assert found.hubs == ("https://hub.example.net/",)
    assert "https://evil.example.org/" not in found.hubs
    assert methods(resource) == [("HEAD", "/feed"), ("GET", "/feed")]


def test_a_hub_only_in_the_html_body_is_not_a_hub() -> None:
    body = b"<html><head><title>t</title></head><body><link rel=hub href=https://evil.example/></body></html>"
    error = fails({"/feed": page(body)})
    assert isinstance(error, DiscoveryError)
    assert "no hub" in str(error)


def test_html_head_ends_at_the_first_body_content_even_without_tags() -> None:
    # No <head>/<body> tags: the text starts the body, the later link is in it.
    body = b"<link rel=hub href=https://hub.example/>Some text<link rel=self href=/x>"
    found, _ = run({"/feed": page(body)})
    assert found.hubs == ("https://hub.example/",)
    assert found.self_url is None


def test_html_base_element_changes_relative_resolution() -> None:
    body = b'<html><head><base href="https://cdn.example/b/"><link rel="hub self" href="h"></head></html>'
    found, _ = run({"/feed": page(body)})
    assert found.hubs == ("https://cdn.example/b/h",)
    assert found.self_url == "https://cdn.example/b/h"


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Example</title>
  <link rel="hub" href="http://hub.example.net/"/>
  <link rel="hub" href="https://hub2.example.net/"/>
  <link rel="self" href="/atom.xml"/>
  <id>urn:x</id>
  <entry><id>urn:e</id><link rel="self" href="https://entry.example/self"/>
    <link rel="hub" href="https://entry-hub.example/"/></entry>
</feed>"""

RSS = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>Example</title>
    <link>http://example.com/</link>
    <atom:link rel="hub" href="https://pubsubhubbub.example.com/"/>
    <atom:link rel="self" type="application/rss+xml" href="http://example.com/rss"/>
    <item><title>one</title><guid>1</guid></item>
  </channel>
</rss>"""


def test_atom_feed_links_https_hub_first_entry_links_ignored() -> None:
    found, _ = run({"/feed": page(ATOM, content_type="application/atom+xml")})
    assert found.hubs == ("https://hub2.example.net/", "http://hub.example.net/")
    assert found.self_url == "http://example.com/atom.xml"
    assert found.content_type == "application/atom+xml"


@pytest.mark.parametrize(
    "content_type",
    ["application/rss+xml", "text/xml", "application/xml; charset=utf-8", "text/plain"],
)
def test_rss_atom_link_under_any_xml_media_type(content_type: str) -> None:
    found, _ = run({"/feed": page(RSS, content_type=content_type)})
    assert found.hubs == ("https://pubsubhubbub.example.com/",)
    assert found.self_url == "http://example.com/rss"


def test_redirects_are_followed_and_the_final_self_is_the_topic() -> None:
    found, resource = run(
        {
            "/feed": page(status=302, location="http://example.com/moved"),
            "/moved": page(status=307, location="/final"),
            "/final": page(ATOM, content_type="application/atom+xml"),
        }
    )
    assert found.topic == "http://example.com/final"
    assert found.self_url == "http://example.com/atom.xml"


def test_too_many_redirects_is_a_discovery_error() -> None:
    error = fails({"/feed": page(status=302, location="/feed")})
    assert isinstance(error, DiscoveryError)
    assert "redirects" in str(error)


def test_a_redirect_to_a_private_address_is_refused_by_the_guard() -> None:
    error = fails({"/feed": page(status=301, location="http://169.254.169.254/latest/")})
    assert isinstance(error, GuardError)


def test_no_hub_anywhere() -> None:
    error = fails({"/feed": page(b'{"a": 1}', content_type="application/json")})
    assert isinstance(error, DiscoveryError)
    assert "http://example.com/feed" in str(error)


def test_missing_topic() -> None:
    error = fails({})
    assert isinstance(error, DiscoveryError)
    assert "404" in str(error)


def test_hub_without_self_keeps_the_fetched_url_as_topic() -> None:
    found, _ = run({"/feed": page(links=("<https://hub.example/>; rel=hub",))})
    assert found.self_url is None
    assert found.topic == "http://example.com/feed"


def test_entity_laden_feed_is_refused_not_expanded() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="https://h/&b;"/></feed>"""
    error = fails({"/feed": page(bomb, content_type="application/atom+xml")})
    assert isinstance(error, DiscoveryError)
    assert "refused" in str(error)


def test_non_web_hub_urls_are_ignored() -> None:
    found, _ = run(
        {
            "/feed": page(
                links=("<javascript:alert(1)>; rel=hub", "<https://hub.example/>; rel=hub")
            )
        }
    )
    assert found.hubs == ("https://hub.example/",)


def test_discovery_asks_for_a_feed_first_and_the_caller_may_negotiate() -> None:
    resource = Routes({"/feed": page(HTML)})
    kit = Kit(resource)
    kit.run(discover(kit.client, "http://example.com/feed"))
    kit.run(discover(kit.client, "http://example.com/feed", accept="application/json"))
    accepts = [headers["accept"] for _, _, headers, _ in resource.seen]
    assert accepts[0].startswith("application/atom+xml")
    assert accepts[:2] == [accepts[0]] * 2  # HEAD and GET ask alike (section 4.1)
    assert accepts[2:] == ["application/json"] * 2
