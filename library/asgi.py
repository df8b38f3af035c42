"""The ASGI application, for `uvicorn library.asgi:app` and `library serve`."""

from library.app import create_app

app = create_app()
