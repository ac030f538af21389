"""twistd plugin declaring ``twistd mercure``.

Imports nothing of the application so that ``twistd --help`` stays fast and
never breaks on an import error in the hub itself.
"""

from twisted.application.service import ServiceMaker

mercure = ServiceMaker(
    "Mercure hub",
    "mercure_twisted.tap",
    "A Mercure hub (draft-07 and draft-08) with an optional WebSub bridge.",
    "mercure",
)
