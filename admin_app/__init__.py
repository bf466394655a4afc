"""The PySide6 back-office app (a Qt-free core under a thin GUI). Not built yet."""
