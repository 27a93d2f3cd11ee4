"""The fab-bluegreen test bed: simulated hosts (network + mount namespaces) on one Linux machine."""
from .bed import Bed, BedError, Host, ensure_up

__all__ = ["Bed", "BedError", "Host", "ensure_up"]
