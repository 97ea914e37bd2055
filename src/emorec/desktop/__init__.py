"""The PySide6 desktop app (``emorec desktop``): a thin window over :class:`emorec.engine.EmotionRecognizer`.

``core`` is Qt-free (frame pacing, face selection, timeline); ``worker``, ``widgets`` and ``window`` are Qt.
Importing this package loads no Qt; :func:`emorec.desktop.app.run_app` starts the window.
"""
