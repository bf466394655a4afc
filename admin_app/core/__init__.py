"""The desktop app's Qt-free core: API client, data classes, settings and CSV export, testable with plain pytest."""
from .client import ApiClient, ApiError, ClientError, ConnectionLost
from .models import Page, Payment, PaymentDetail, PaymentFilters, Session, TimelineEntry

__all__ = ["ApiClient", "ApiError", "ClientError", "ConnectionLost", "Page", "Payment", "PaymentDetail",
           "PaymentFilters", "Session", "TimelineEntry"]
