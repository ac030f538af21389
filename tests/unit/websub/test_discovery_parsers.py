"""The pure discovery parsers, property-tested: Link headers, HTML head, feeds."""

from __future__ import annotations

import html
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from websub_bridge.discovery import (
    DiscoveryError,
    document_kind,
    links_from_feed,
    links_from_html,
    parse_link_header,
)

BASE = "https://example.com/blog/feed"

paths = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~/?=&", min_size=1, max_size=20).filter(
    lambda p: not p.startswith("//")
)
urls = st.one_of(
    paths,
    st.builds(lambda h, p: f"https://{h}.example/{p}", st.text("abcxyz", min_size=1, max_size=6), paths),
)
rel_tokens = st.sampled_from(["hub", "self", "alternate", "Hub", "SELF", "stylesheet", "http://example.org/rel"])
rel_sets = st.lists(rel_tokens, min_size=1, max_size=3)
# Parameter values that must not confuse the splitter: commas, semicolons,
# quotes and angle brackets inside quoted strings.
tricky = st.text('abc ,;<>="\\', max_size=12)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def link_values(draw: st.DrawFn) -> tuple[str, tuple[str, frozenset[str]]]:
    url = draw(urls)
    rels = draw(rel_sets)
    rel_text = " ".join(rels)
    quoted = draw(st.booleans()) or len(rels) > 1 or "/" in rel_text
    params = [f"rel={_quote(rel_text) if quoted else rel_text}"]
    for _ in range(draw(st.integers(0, 2))):
        params.insert(draw(st.integers(0, len(params))), f"title={_quote(draw(tricky))}")
    if draw(st.booleans()):
        params.append("type=text/html")
    ows = draw(st.sampled_from(["", " ", "  "]))
    text = f"<{url}>" + "".join(f"{ows};{ows}{p}" for p in params)
    expected = (urllib.parse.urljoin(BASE, url), frozenset(r.lower() for r in rels))
    return text, expected


@given(st.lists(link_values(), max_size=6), st.data())
def test_link_headers_round_trip(links: list[tuple[str, tuple[str, frozenset[str]]]], data: st.DataObject) -> None:
    texts = [t for t, _ in links]
    # Split the links over one or several headers, comma-joined within each.
    headers: list[str] = []
    for text in texts:
        if headers and data.draw(st.booleans()):
            headers[-1] += data.draw(st.sampled_from([",", ", ", " ,  "])) + text
        else:
            headers.append(text)
    assert parse_link_header(headers, BASE) == [e for _, e in links]


@given(st.lists(st.text(max_size=80), max_size=4))
@example(['<a>; rel="unterminated'])
@example(["<a", "; rel=hub", ",,,", '<b>; rel=hub; rel=self'])
def test_link_header_parser_never_raises(values: list[str]) -> None:
    for url, rels in parse_link_header(values, BASE):
        assert isinstance(url, str) and rels and all(r == r.lower() for r in rels)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (['<https://h/>; rel="hub"'], [("https://h/", {"hub"})]),
        (["<https://h/>;rel=hub"], [("https://h/", {"hub"})]),
        (['</a>; rel="hub self"'], [("https://example.com/a", {"hub", "self"})]),
        (["<a>; rel=hub; rel=self"], [("https://example.com/blog/a", {"hub"})]),  # first rel only
        (['<x>; title="a, <b>; rel=hub"; rel=self'], [("https://example.com/blog/x", {"self"})]),
        (['<x>; anchor="#other"; rel=hub'], []),  # about another resource
        ([f'<x>; anchor="{BASE}"; rel=hub'], [("https://example.com/blog/x", {"hub"})]),
        (["garbage, <y>; rel=hub"], [("https://example.com/blog/y", {"hub"})]),
        (["<z>; nonsense <w>, <v>; rel=hub"], [("https://example.com/blog/v", {"hub"})]),
        (["<q>"], []),
        (["<sp ace>; rel=hub"], [("https://example.com/blog/sp ace", {"hub"})]),
    ],
)
def test_link_header_cases(values: list[str], expected: list[tuple[str, set[str]]]) -> None:
    assert parse_link_header(values, BASE) == [(u, frozenset(r)) for u, r in expected]


# -- HTML ---------------------------------------------------------------------

attribute_text = st.text("abc/:.-?=&<>'\" ", max_size=15)


def _link_tag(href: str, rels: list[str], style: str) -> str:
    rel = " ".join(rels)
    if style == "quoted":
        return f'<link rel="{html.escape(rel)}" href="{html.escape(href)}">'
    if style == "single":
        return f"<LINK HREF='{html.escape(href)}' REL='{html.escape(rel)}'/>"
    return f'<link href="{html.escape(href)}" data-x="1" rel="{html.escape(rel)}" />'


@given(
    head=st.lists(st.tuples(urls, rel_sets, st.sampled_from(["quoted", "single", "other"])), max_size=5),
    body=st.lists(st.tuples(urls, rel_sets), max_size=3),
    explicit_head=st.booleans(),
    filler=st.sampled_from(["<title>T &amp; <link rel=hub href=/no></title>", "<meta charset=utf-8>", "<script>var s='<link rel=hub href=/no>';</script>", ""]),
)
def test_html_head_links_only(
    head: list[tuple[str, list[str], str]],
    body: list[tuple[str, list[str]]],
    explicit_head: bool,
    filler: str,
) -> None:
    tags = "".join(_link_tag(h, r, s) for h, r, s in head)
    doc = "<!DOCTYPE html><html>"
    doc += f"<head>{filler}{tags}</head>" if explicit_head else f"{filler}{tags}"
    doc += "<body><p>text</p>" + "".join(_link_tag(h, r, "quoted") for h, r in body) + "</body></html>"
    expected = [(urllib.parse.urljoin(BASE, h), frozenset(x.lower() for x in r)) for h, r, _ in head]
    assert links_from_html(doc, BASE) == expected


@given(st.text(max_size=200))
@example("<html><head><link rel=hub href='x")
@example("<head><base href='::::'><link rel=hub href=a></head>")
def test_html_parser_never_raises(text: str) -> None:
    links_from_html(text, BASE)


def test_html_body_element_ends_the_head() -> None:
    doc = "<html><head><link rel=hub href=/a><div>x</div><link rel=hub href=/b></head></html>"
    assert links_from_html(doc, BASE) == [("https://example.com/a", frozenset({"hub"}))]


# -- feeds --------------------------------------------------------------------

ATOM = "http://www.w3.org/2005/Atom"


@given(
    links=st.lists(st.tuples(urls, rel_sets), max_size=5),
    flavour=st.sampled_from(["atom", "rss2", "rdf"]),
    entry_links=st.lists(st.tuples(urls, rel_sets), max_size=2),
)
def test_feed_level_links_round_trip(
    links: list[tuple[str, list[str]]],
    flavour: str,
    entry_links: list[tuple[str, list[str]]],
) -> None:
    if flavour == "atom":
        root = container = ET.Element(f"{{{ATOM}}}feed")
        item = ET.SubElement(root, f"{{{ATOM}}}entry")
    elif flavour == "rss2":
        root = ET.Element("rss", version="2.0")
        container = ET.SubElement(root, "channel")
        item = ET.SubElement(container, "item")
    else:
        root = ET.Element("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF")
        container = ET.SubElement(root, "{http://purl.org/rss/1.0/}channel")
        item = ET.SubElement(root, "{http://purl.org/rss/1.0/}item")
    for href, rels in links:
        ET.SubElement(container, f"{{{ATOM}}}link", rel=" ".join(rels), href=href)
    for href, rels in entry_links:  # an entry's links are not the feed's
        ET.SubElement(item, f"{{{ATOM}}}link", rel=" ".join(rels), href=href)
    expected = [(urllib.parse.urljoin(BASE, h), frozenset(r.lower() for r in rels)) for h, rels in links]
    assert links_from_feed(ET.tostring(root), BASE) == expected


def test_feed_xml_base_and_default_rel() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://other.example/dir/">
      <link href="alt"/><link rel="hub" xml:base="sub/" href="h"/></feed>"""
    assert links_from_feed(body, BASE) == [
        ("https://other.example/dir/alt", frozenset({"alternate"})),
        ("https://other.example/dir/sub/h", frozenset({"hub"})),
    ]


@given(st.binary(max_size=200))
@example(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
def test_feed_parser_raises_only_discovery_errors(body: bytes) -> None:
    try:
        links_from_feed(body, BASE)
    except DiscoveryError:
        pass


@pytest.mark.parametrize(
    ("content_type", "body", "kind"),
    [
        ("text/html; charset=utf-8", b"", "html"),
        ("application/xhtml+xml", b"", "html"),
        ("application/atom+xml", b"", "xml"),
        ("application/rss+xml", b"", "xml"),
        ("text/xml", b"", "xml"),
        ("application/xml", b"", "xml"),
        ("application/json", b"<feed/>", None),
        (None, b"\xef\xbb\xbf  <?xml version='1.0'?><rss/>", "xml"),
        ("text/plain", b"<rss version='2.0'/>", "xml"),
        ("application/octet-stream", b"<!DOCTYPE html><html>", "html"),
        (None, b"just text", None),
    ],
)
def test_document_kind(content_type: str | None, body: bytes, kind: str | None) -> None:
    assert document_kind(content_type, body) == kind


@pytest.mark.parametrize(
    ("doc", "hrefs"),
    [
        # <title> is text: a "link" in it is not one, even self-closed.
        ("<head><title/>x<link rel=hub href=/a></title><link rel=hub href=/b></head>", ["/b"]),
        # <noscript> and <template> hold no live links.
        (
            "<head/><link rel=hub href=/b><noscript><link rel=hub href=/n></noscript>"
            "<template><link rel=hub href=/t></template><link rel=hub href=/s>",
            ["/b", "/s"],
        ),
        ("<head><script>document.write('<link rel=hub href=/w>')</script><link rel=hub href=/k>", ["/k"]),
        ("<!-- <link rel=hub href=/c> --><link rel=hub href=/d>", ["/d"]),
    ],
)
def test_html_text_elements_hold_no_links(doc: str, hrefs: list[str]) -> None:
    assert [u for u, _ in links_from_html(doc, BASE)] == [urllib.parse.urljoin(BASE, h) for h in hrefs]


@pytest.mark.parametrize("pad", [8180, 8190, 8200, 20000])
def test_html_links_across_parser_slices(pad: int) -> None:
    doc = "<head><meta name=x content='" + "a" * pad + "'><link rel=hub href=/x></head><body>" + "b" * 50000
    assert links_from_html(doc, BASE) == [("https://example.com/x", frozenset({"hub"}))]
