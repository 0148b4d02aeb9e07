"""KMC Sense host side: the detector shared by the live gateway and the offline tools."""

__version__ = "0.1.0"
