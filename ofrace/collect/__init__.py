"""Collection: transports, the node agent runner, inventories, whole-cluster reads."""
