"""The web app (Flask): live camera page, uploads and a REST API, all thin layers over ``EmotionRecognizer``.

Needs the ``web`` extra: ``pip install 'emorec[web]'``.
"""

from emorec.web.app import WebLimits, create_app

__all__ = ["WebLimits", "create_app"]
