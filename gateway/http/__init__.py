"""The HTTP edge: request guards, error pages, health and metrics."""
