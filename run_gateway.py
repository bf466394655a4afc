#!/usr/bin/env python3
"""Start the Lipa gateway: `python run_gateway.py` (serve), or `python run_gateway.py migrate`."""
import sys

from gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
