"""WebSub bridge for the Mercure hub.

The follow role (``follow/``) makes the hub a W3C WebSub subscriber: it
follows external topics and re-publishes each verified delivery as a
Mercure update.  Its foundations are shared with the hub role of part 2:
``guard`` and ``client`` (the one outbound HTTP client, behind the address
guard), ``discovery``, ``signature``, ``feeds``, ``store`` (SQLite state at
``<data_dir>/websub.db``) and ``port`` (everything the bridge asks of a
Mercure hub, with an in-process adapter).  ``mercure_twisted`` imports
none of it except where ``tap.py`` wires the bridge in.
"""
