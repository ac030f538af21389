"""The debugging page's static files, served from the package (no build step)."""

from __future__ import annotations

from importlib.resources import files

__all__ = ["ui_file"]

_TYPES = {
    "index.html": b"text/html; charset=utf-8",
    "ui.css": b"text/css; charset=utf-8",
    "ui.js": b"text/javascript; charset=utf-8",
}

#: Same-origin only: the page talks to this hub and loads nothing else.
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def ui_file(name: str) -> tuple[bytes, bytes] | None:
    """(content type, body) of one of the page's files, None for anything else."""
    content_type = _TYPES.get(name or "index.html")
    if content_type is None:
        return None
    body = files(__package__).joinpath("ui", name or "index.html").read_bytes()
    return content_type, body
