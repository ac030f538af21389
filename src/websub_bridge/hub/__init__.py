"""The WebSub hub role: Mercure topics offered to server-to-server WebSub
subscribers (W3C WebSub sections 5 to 8)."""
