"""One content distribution request (WebSub section 7, signed per section 8).

:func:`send_delivery` makes exactly one POST of a queued
:class:`~websub_bridge.hub._store.Delivery` to its callback and says what
the scheduler should do next; it never retries, sleeps or touches the store
itself, so the queue's policy (backoff, give-up, per-host caps) lives in one
place (``_schedule``) and this module stays a pure translation of one HTTP
exchange into a :class:`SendOutcome`.

Why these choices:

- Redirects are never followed (``follow_redirects=0``): section 7 asks the
  subscriber to answer 2xx, and a callback that redirects could bounce the
  signed body to a host the subscriber never verified.  A 3xx is a RETRY.
- Only a few KB of the answer are read: the body means nothing to the hub,
  and a subscriber (or a hostile callback) must not make it buffer megabytes.
- Reasons name the callback's origin only: the callback's path and query are
  the subscriber's capability (section 5.1 recommends unguessable callbacks).
- Network problems never raise: the caller is a queue worker, and every
  failure of one subscriber must end as data, not as an exception that could
  stop the deliveries of the others.
"""

from __future__ import annotations

import enum
import urllib.parse

import attrs

from ..client import BodyTooLarge, OutboundClient, OutboundError, OutboundTimeout, loggable_origin
from ..guard import GuardError
from ..signature import sign
from ._store import Delivery

__all__ = ["MAX_ANSWER_BYTES", "Outcome", "SendOutcome", "link_header", "send_delivery"]

# The most of a subscriber's answer the hub reads; the body is discarded.
MAX_ANSWER_BYTES = 8192

# Printable ASCII a URL may keep inside ``<...>`` of a Link header; anything
# else (``<``, ``>``, ``"``, space, controls, non-ASCII) is percent-encoded so
# the header stays one well-formed Latin-1 value whatever the topic holds.
_LINK_SAFE = "!#$%&'()*+,-./:;=?@[]^_`{|}~"


class Outcome(enum.Enum):
    """What one delivery attempt means for its queue entry."""

    DELIVERED = "delivered"  # 2xx: forget the delivery
    GONE = "gone"  # 410: the subscriber ended its subscription (section 7)
    RETRY = "retry"  # anything else: try again later, with backoff
    REFUSED = "refused"  # the address policy refused the callback: retried like
    # RETRY (DNS may change) but reported apart, since it is the operator's
    # policy rather than the subscriber's fault


@attrs.frozen
class SendOutcome:
    """The outcome of one attempt, with a short reason safe for log lines.

    ``status`` is the HTTP status when the subscriber answered at all.
    """

    outcome: Outcome
    reason: str
    status: int | None = None

    @property
    def retry(self) -> bool:
        """Whether the scheduler should try this delivery again."""
        return self.outcome in (Outcome.RETRY, Outcome.REFUSED)


def _link_url(url: str) -> str:
    return urllib.parse.quote(url, safe=_LINK_SAFE)


def link_header(hub_url: str, topic: str) -> str:
    """The one ``Link`` header of a distribution: ``rel=hub`` and ``rel=self``.

    Section 7 requires both relations; one header with two link-values
    (RFC 8288, section 3) is what subscribers that read only the first
    ``Link`` header still understand fully.
    """
    return f'<{_link_url(hub_url)}>; rel="hub", <{_link_url(topic)}>; rel="self"'


async def send_delivery(
    client: OutboundClient,
    delivery: Delivery,
    *,
    hub_url: str,
    algorithm: str,
    timeout: float,
) -> SendOutcome:
    """POST ``delivery`` to its callback once and classify the answer.

    ``X-Hub-Signature`` (``algorithm``, HMAC over the exact body, key the
    secret's UTF-8) is sent only when the subscription has a secret
    (section 8).  Never raises for network trouble: timeouts and connection
    errors are RETRY, a refused address is REFUSED.
    """
    origin = loggable_origin(delivery.callback)
    headers = {
        "Content-Type": delivery.content_type,
        "Link": link_header(hub_url, delivery.topic),
    }
    if delivery.secret is not None:
        headers["X-Hub-Signature"] = sign(
            algorithm, delivery.secret.encode("utf-8"), delivery.body
        )
    try:
        response = await client.request(
            "POST",
            delivery.callback,
            headers=headers,
            body=delivery.body,
            follow_redirects=0,
            timeout=timeout,
            max_body=MAX_ANSWER_BYTES,
        )
    except BodyTooLarge:
        # The status was read but the client does not return it past the
        # limit; without it we cannot tell a 2xx from a 5xx, so try again.
        return SendOutcome(
            Outcome.RETRY, f"{origin} answered more than {MAX_ANSWER_BYTES} bytes"
        )
    except GuardError:
        return SendOutcome(Outcome.REFUSED, f"{origin}: the address is not allowed")
    except OutboundTimeout:
        return SendOutcome(Outcome.RETRY, f"{origin}: no answer within {timeout:g}s")
    except OutboundError:
        return SendOutcome(Outcome.RETRY, f"{origin}: the connection failed")
    status = response.status
    if 200 <= status < 300:
        return SendOutcome(Outcome.DELIVERED, f"{origin} answered {status}", status)
    if status == 410:
        return SendOutcome(Outcome.GONE, f"{origin} answered 410 Gone", status)
    if 300 <= status < 400:
        return SendOutcome(
            Outcome.RETRY, f"{origin} answered {status} (redirects are not followed)", status
        )
    return SendOutcome(Outcome.RETRY, f"{origin} answered {status}", status)
