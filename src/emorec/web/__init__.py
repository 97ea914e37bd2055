"""The web app (Flask): live camera page, uploads and a REST API, all thin layers over ``EmotionRecognizer``.

Needs the ``web`` extra: ``pip install 'emorec[web]'``.
"""

from emorec.web.app import create_app
from emorec.web.state import WebLimits

__all__ = ["WebLimits", "create_app"]
