"""Rapport: the client-engagement bot for therapy practices.

Public face of the core package. Subpackages: ``engine`` (pure dialogue engine), ``understanding``
(intent, rating and date parsing), ``safety`` (crisis detection and resources), plus the service,
scheduler, simulator and CLI modules that act on what those pure parts return.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
