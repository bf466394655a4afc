"""Flask-free services behind the staff API: auth, stats, the live feed, timelines, payment queries."""
