"""OpenFlow semantics: fields, flow text, the classifier, bridge indexes, execution."""
