"""Channel adapters (public face): one module per provider, normalising to Inbound / SendResult."""

from channels.base import Inbound, Outbound, SendResult

__all__ = ["Inbound", "Outbound", "SendResult"]
