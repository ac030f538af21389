"""Topic matchers of both drafts, compiled once and cached.

Draft-07 topic selectors are ``*``, exact strings, or RFC 6570 URI templates
(matched, not expanded: a template is compiled to an RE2 pattern, linear
time).  Draft-08 matchers are ``exact`` and ``urlpattern`` (WHATWG URL
Pattern, evaluated by the Rust ``urlpattern`` crate on the linear-time
``regex`` engine); ``*`` is the wildcard whatever the type.

Every matcher is an immutable value with ``kind``, ``pattern`` and
``matches(topic)``; the ``compile_*`` functions are cached so that thousands of
subscribers with the same selector share one compiled object.
"""
# CONTRACT (implemented by the matching helper):
#
#   class MatcherError(ValueError)           -- message says what is wrong
#   class Matcher(Protocol):
#       kind: str      # "wildcard" | "exact" | "template" | "urlpattern"
#       pattern: str   # the selector string as given
#       def matches(self, topic: str) -> bool
#   WILDCARD: Matcher                          # the shared "*" matcher
#   def compile_selector(selector: str) -> Matcher
#       draft-07 rules: "*" -> WILDCARD; a string with a valid template
#       expression -> template matcher (matches the literal string too);
#       otherwise exact.  Never raises for a non-empty string.
#   def compile_matcher(match_type: str, pattern: str, base_url: str) -> Matcher
#       draft-08: match_type in {"exact", "urlpattern"}; "*" -> WILDCARD for
#       any type; raises MatcherError for an unknown type or a malformed
#       URL pattern.  base_url is the hub URL, used to resolve relative
#       patterns and relative topics.  A topic that cannot be parsed as a
#       URL does not match a URL pattern.
#   MATCHER_TYPES = ("exact", "urlpattern")
