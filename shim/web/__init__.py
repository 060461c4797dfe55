"""The face: the ASGI app, the XML-RPC endpoint, pass-through, the file proxy, health, the status page."""
