#!/usr/bin/env python3
"""The Lipa back-office desktop app: python run_admin.py [--gateway-url URL] [--username U --password P]
[--screenshot DIR]."""
import sys

from admin_app.gui.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
