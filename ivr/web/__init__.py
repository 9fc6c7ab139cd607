"""The web side: the FastAPI app, sign-in and roles, the WebSocket hub, the agent desk, the
supervisor wall, the flow editor's API, and the static pages (``static/``).

Sits on routing and voice; nothing below imports it. Handlers stay thin over those services.
"""
