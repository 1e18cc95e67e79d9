"""The web interface: Gradio chat and staff pages mounted in FastAPI with a JSON API (qa.web.server)."""

import os

# Nothing may leave the machine at run time: Gradio would otherwise send usage analytics.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa.web.server import create_app  # noqa: E402

__all__ = ["create_app"]
