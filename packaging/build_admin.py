"""Build the back-office desktop app as one file: python packaging/build_admin.py

PyInstaller (6.22, from PyPI; its PySide6 hook bundles the Qt plugins) turns run_admin.py into
dist/lipa-admin (dist/lipa-admin.exe on Windows, built there: PyInstaller does not cross-build).
The Qt modules the app never imports (web engine, 3D, multimedia, QML, …) are excluded: they only
make the file bigger and slower to unpack at start. The build (about a minute) is kept out of the
normal pytest run; tests/system/test_admin_binary.py smoke-tests dist/lipa-admin when it exists.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "lipa-admin"
UNUSED_QT = ["QtWebEngineCore", "QtWebEngineWidgets", "QtWebEngineQuick", "QtWebChannel", "QtWebSockets",
             "Qt3DCore", "Qt3DRender", "Qt3DInput", "Qt3DLogic", "Qt3DAnimation", "Qt3DExtras",
             "QtMultimedia", "QtMultimediaWidgets", "QtQml", "QtQuick", "QtQuick3D", "QtQuickWidgets",
             "QtBluetooth", "QtNfc", "QtPositioning", "QtLocation", "QtSensors", "QtSerialPort",
             "QtRemoteObjects", "QtScxml", "QtSql", "QtTest", "QtDesigner", "QtHelp", "QtPdf",
             "QtPdfWidgets", "QtSpatialAudio", "QtTextToSpeech", "QtDataVisualization", "QtGraphs",
             "QtHttpServer", "QtNetworkAuth", "QtOpenGLWidgets", "QtSvgWidgets", "QtUiTools"]


def binary_path() -> Path:
    """Where the build puts the one-file app (tests and the smoke run look here)."""
    return ROOT / "dist" / (NAME + (".exe" if sys.platform == "win32" else ""))


def build() -> int:
    """Run PyInstaller --onefile over run_admin.py; work files go to build/ (both are git-ignored)."""
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--onefile", "--windowed",
               "--name", NAME, "--distpath", str(ROOT / "dist"), "--workpath", str(ROOT / "build"),
               "--specpath", str(ROOT / "build"), "--paths", str(ROOT),
               "--collect-submodules", "admin_app"]  # the main window imports its screens by name
    for module in UNUSED_QT:
        command += ["--exclude-module", f"PySide6.{module}"]
    return subprocess.call(command + [str(ROOT / "run_admin.py")], cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    code = build()
    if code == 0:
        path = binary_path()
        print(f"built {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return code


if __name__ == "__main__":
    sys.exit(main())
