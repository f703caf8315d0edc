"""ofrace: trace packets through the OpenFlow tables OVN really installed."""

__version__ = "0.1.0"
