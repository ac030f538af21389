"""twistd plugin declaring ``twistd websub-bridge``.

Imports nothing of the bridge so that ``twistd --help`` stays fast and
never breaks on an import error in the bridge itself.
"""

from twisted.application.service import ServiceMaker

websub_bridge = ServiceMaker(
    "WebSub bridge",
    "websub_bridge.tap",
    "The WebSub bridge (follow WebSub hubs, serve Mercure topics to WebSub "
    "subscribers) against any Mercure hub over HTTP.",
    "websub-bridge",
)
