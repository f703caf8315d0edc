"""Comparisons with the tools users already trust: ofproto/trace, ovn-trace."""
