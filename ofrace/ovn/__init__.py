"""OVN knowledge: the Southbound/Northbound index, controller opcodes, the expression language."""
