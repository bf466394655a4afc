"""Development tools: the provider simulators, the phone CLI and the bench routes (never in production)."""
