"""qbdi: query-based deep improvisation (Dubnov), as a live server and offline tools."""

__version__ = "0.1.0"
