"""The database-counted rate limits now live in gateway/http/ratelimit.py, beside the provider endpoints'
caller guard that needs them too (the channels may not import the API package: that would be a cycle).
Kept here under the old name for the API's and the pay page's imports."""
from __future__ import annotations

from ..http.ratelimit import Limit, RateLimited, hit, over, prune, refuse_if_over

__all__ = ["Limit", "RateLimited", "hit", "over", "prune", "refuse_if_over"]
