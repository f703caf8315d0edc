"""Annotate: a cluster trace read with OVN's meaning (logical stages, names, NB objects)."""
