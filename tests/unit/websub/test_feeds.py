"""Feed entries for ``mode = "entries"``: Atom, RSS 2.0, RSS 1.0, attacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websub_bridge.feeds import Entry, FeedError, parse_entries

ATOM_NS = "{http://www.w3.org/2005/Atom}"

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0"
      xml:base="https://blog.example/">
  <title>Blog</title>
  <id>urn:uuid:feed</id>
  <link rel="hub" href="https://hub.example/"/>
  <entry>
    <id>urn:uuid:one</id>
    <title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">First <b>post</b></div></title>
    <link rel="alternate" href="posts/1"/>
    <updated>2026-12-01T10:00:00Z</updated>
    <thr:total>2</thr:total>
    <content type="html">&lt;p&gt;Fish &amp;amp; chips&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>No id</title>
    <link rel="edit" href="edit/2"/>
    <link href="posts/2"/>
    <published>2026-12-02T10:00:00Z</published>
  </entry>
  <entry><title>Bare</title></entry>
</feed>"""

RSS = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>News</title>
    <atom:link rel="self" href="https://news.example/rss"/>
    <item>
      <title>A</title><link>https://news.example/a</link>
      <guid isPermaLink="false">tag:news,1</guid><pubDate>Tue, 01 Dec 2026 10:00:00 GMT</pubDate>
      <dc:creator>Ada</dc:creator>
    </item>
    <item><title>B</title><link>/b</link><dc:date>2026-12-02</dc:date></item>
    <item><description>only text</description></item>
  </channel>
</rss>"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
  <channel rdf:about="https://old.example/"><title>Old</title></channel>
  <item rdf:about="https://old.example/1"><title>One</title><link>https://old.example/1</link></item>
  <item rdf:about="https://old.example/2"><title>Two</title></item>
</rdf:RDF>"""


def test_atom_entries_in_order_with_ids_titles_links_dates() -> None:
    entries = parse_entries(ATOM, "application/atom+xml")
    assert [(e.id, e.title, e.link, e.updated) for e in entries[:2]] == [
        ("urn:uuid:one", "First post", "https://blog.example/posts/1", "2026-12-01T10:00:00Z"),
        ("https://blog.example/posts/2", "No id", "https://blog.example/posts/2", "2026-12-02T10:00:00Z"),
    ]
    bare = entries[2]
    assert bare.link is None
    assert bare.id.startswith("sha256:") and len(bare.id) == len("sha256:") + 64


def test_atom_entry_xml_is_a_standalone_document_with_its_namespaces() -> None:
    first = parse_entries(ATOM, "application/atom+xml")[0]
    root = ET.fromstring(first.xml)
    assert root.tag == ATOM_NS + "entry"
    assert root.findtext(ATOM_NS + "id") == "urn:uuid:one"
    assert root.find("{http://www.w3.org/1999/xhtml}div", None) is None  # nested in title
    title = root.find(ATOM_NS + "title")
    assert title is not None and title.find("{http://www.w3.org/1999/xhtml}div") is not None
    assert root.findtext("{http://purl.org/syndication/thread/1.0}total") == "2"
    assert root.findtext(ATOM_NS + "content") == "<p>Fish &amp; chips</p>"
    # The base in effect in the feed travels with the entry.
    assert root.get("{http://www.w3.org/XML/1998/namespace}base") == "https://blog.example/"
    assert first.xml.startswith('<entry xmlns="http://www.w3.org/2005/Atom"')


def test_rss2_items_guid_then_link_then_digest() -> None:
    entries = parse_entries(RSS, "application/rss+xml", base="https://news.example/rss")
    assert [(e.id, e.title, e.link, e.updated) for e in entries] == [
        ("tag:news,1", "A", "https://news.example/a", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ("https://news.example/b", "B", "https://news.example/b", "2026-12-02"),
        (entries[2].id, None, None, None),
    ]
    assert entries[2].id.startswith("sha256:")
    item = ET.fromstring(entries[0].xml)
    assert item.tag == "item"
    assert item.findtext("{http://purl.org/dc/elements/1.1/}creator") == "Ada"


@pytest.mark.parametrize("content_type", ["text/xml", "application/xml; charset=utf-8", None])
def test_rss_served_as_generic_xml(content_type: str | None) -> None:
    assert [e.id for e in parse_entries(RSS, content_type)][:1] == ["tag:news,1"]


def test_rss1_rdf_items() -> None:
    entries = parse_entries(RDF, "application/rdf+xml")
    assert [(e.id, e.title) for e in entries] == [
        ("https://old.example/1", "One"),
        ("https://old.example/2", "Two"),
    ]
    assert ET.fromstring(entries[0].xml).tag == "{http://purl.org/rss/1.0/}item"


def test_a_single_atom_entry_document() -> None:
    body = b'<entry xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id></entry>'
    assert [e.id for e in parse_entries(body, "application/atom+xml")] == ["urn:x"]


def test_same_entry_same_digest_id() -> None:
    one = parse_entries(ATOM, None)[2].id
    two = parse_entries(ATOM, None)[2].id
    assert one == two


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>hi</body></html>", "text/html"),
        (b'{"items": []}', "application/json"),
        (b"<html><body>hi</body></html>", None),
        (b"<feed xmlns='urn:not-atom'/>", "application/xml"),
        (b"<rss><channel>", "application/rss+xml"),
        (b"", None),
        (b"\xff\xfe not xml", "text/xml"),
    ],
)
def test_non_feeds_are_refused(body: bytes, content_type: str | None) -> None:
    with pytest.raises(FeedError):
        parse_entries(body, content_type)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE feed [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>&lol9;</id></entry></feed>"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><item><title>&xxe;</title></item></channel></rss>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote;]>
<rss version="2.0"><channel><item><title>x</title></item></channel></rss>"""

EXTERNAL_DTD_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://127.0.0.1:1/rss.dtd">
<rss version="2.0"><channel><item><title>&undefined;</title></item></channel></rss>"""


@pytest.mark.parametrize(
    "body", [BILLION_LAUGHS, XXE_FILE, XXE_PARAMETER, EXTERNAL_DTD_ENTITY], ids=["laughs", "xxe", "xxe-param", "dtd"]
)
def test_malicious_xml_is_refused(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_entries(body, "application/rss+xml")


def test_a_plain_doctype_without_entities_is_read() -> None:
    rss091 = b"""<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><item><title>old</title><link>http://old.example/1</link></item></channel></rss>"""
    assert [e.id for e in parse_entries(rss091, "text/xml")] == ["http://old.example/1"]


def test_absurd_nesting_is_refused_not_a_crash() -> None:
    deep = b"<rss><channel><item>" + b"<x>" * 5000 + b"</x>" * 5000 + b"</item></channel></rss>"
    with pytest.raises(FeedError):
        parse_entries(deep, "text/xml")


_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\t\n&<>\"'"),
    max_size=40,
)


@given(
    items=st.lists(
        st.tuples(st.text("abcxyz019-:", min_size=1, max_size=12), _text, _text), max_size=5
    )
)
def test_entries_round_trip_their_text_through_the_standalone_xml(
    items: list[tuple[str, str, str]],
) -> None:
    feed = ET.Element(ATOM_NS + "feed")
    for entry_id, title, content in items:
        entry = ET.SubElement(feed, ATOM_NS + "entry")
        ET.SubElement(entry, ATOM_NS + "id").text = entry_id
        ET.SubElement(entry, ATOM_NS + "title").text = title
        node = ET.SubElement(entry, ATOM_NS + "content", {"type": "text", "note": title})
        node.text = content
    parsed = parse_entries(ET.tostring(feed), "application/atom+xml")
    assert [e.id for e in parsed] == [i for i, _, _ in items]
    for entry, (_, title, content) in zip(parsed, items, strict=True):
        assert isinstance(entry, Entry)
        assert entry.title == (title.strip() or None)
        again = ET.fromstring(entry.xml)
        assert again.findtext(ATOM_NS + "title", default="") == title
        content_node = again.find(ATOM_NS + "content")
        assert content_node is not None
        assert (content_node.text or "") == content
        assert content_node.get("note") == title
