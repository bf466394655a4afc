"""The PySide6 back-office app: a Qt-free core (``admin_app.core``) under a thin GUI (``admin_app.gui``)."""
