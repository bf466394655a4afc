#!/usr/bin/env python3
"""The PySide6 back-office app (not built yet: it comes with the admin API)."""
import sys

if __name__ == "__main__":
    print("run_admin.py: the desktop app is not built yet; use the gateway's API and USSD for now.",
          file=sys.stderr)
    sys.exit(1)
