"""Output for people and machines: tables, trees, JSON."""
