"""Simulation: OpenFlow execution on one chassis, conntrack, learn."""
