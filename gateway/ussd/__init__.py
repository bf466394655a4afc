"""The USSD channel: menu engine (menu), screens (texts), stored sessions (sessions), Flask blueprint (views)."""
