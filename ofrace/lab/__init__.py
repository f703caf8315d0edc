"""The embedded lab: a real multi-chassis OVN on one machine (``ofrace lab``).

:mod:`ofrace.lab.catalog` loads a declarative topology (:mod:`ofrace.lab.topology`),
:mod:`ofrace.lab.lab` brings it up as real daemons in network namespaces and records what it
started in ``<dir>/lab.json`` for the rest of ofrace and the tests.
"""
