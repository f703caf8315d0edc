"""Audit: logical against physical, and the health of ports and tunnels, per chassis."""
