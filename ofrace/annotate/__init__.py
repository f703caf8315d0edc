"""Annotate: OVN meaning (SB rows, NB objects, names) of OpenFlow-level facts."""
