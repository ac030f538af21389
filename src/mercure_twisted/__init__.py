"""A Mercure hub on Twisted and Klein, speaking draft-07 (hub 0.x) and draft-08 (Mercure 1.0)."""

__all__: list[str] = []
