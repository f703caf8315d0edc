"""Node-side code, stdlib only; shipped to nodes as source by ofrace.collect."""
