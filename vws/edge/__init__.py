"""What speaks to sockets and HTTP: the ASGI app, the WebSocket handshake, and the HTTP
endpoints (status, health, metrics, publish, static files).
"""
