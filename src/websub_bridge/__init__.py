"""WebSub federation bridge for the Mercure hub (built in a later issue)."""
