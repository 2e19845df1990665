"""flowreg-session: variational optical-flow registration of 2-photon recordings and sessions."""

__version__ = "0.1.0"
