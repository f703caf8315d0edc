"""Tracing inputs: the packet a user asks about, in the words ovn-trace uses."""
