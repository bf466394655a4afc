"""Every customer-facing text catalogue (USSD, SMS replies, notifications), one fit/fallback helper."""
