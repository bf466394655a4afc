"""The SMS channel: commands customers text in (STATUS, HISTORY, PAY, STOP...) and Africa's Talking
delivery reports. The views only store and answer; commands.py and delivery.py apply, knowing no Flask."""
