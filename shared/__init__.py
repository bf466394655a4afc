"""Code both the gateway and the admin app use: config, database, models, rules."""
