"""Where topologies come from: shipped with ofrace or a file, generated when they say [scale].

Kept apart from :mod:`ofrace.lab.topology` (the dataclasses and their checks) so
that :mod:`ofrace.lab.scale`, which builds those dataclasses, is imported by the
loader and not by the model: no import circle.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path

from ofrace.errors import LabError
from ofrace.lab.scale import check, expand
from ofrace.lab.topology import Scale, Topology, build, validate


def available() -> list[str]:
    """Names of the topologies shipped with ofrace."""
    folder = _shipped()
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _shipped():
    return resources.files("ofrace.lab").joinpath("topologies")


def load(name_or_path: str, sizes: dict[str, str] | None = None) -> Topology:
    """Load a shipped topology by name, or any topology file by path.

    A topology with a ``[scale]`` table is generated, with ``sizes`` (size
    parameter -> value) replacing the file's; other topologies take no sizes.
    """
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise LabError(f"topology file {path} not found")
        text = path.read_text()
        origin = str(path)
    else:
        resource = _shipped().joinpath(f"{name_or_path}.toml")
        if not resource.is_file():
            known = ", ".join(available())
            raise LabError(f"unknown topology {name_or_path!r} (known: {known})")
        text = resource.read_text()
        origin = name_or_path
    data = _parse(text, origin)
    base = data.pop("based_on", None)
    if base is not None:
        data = _based_on(base, data, origin)
    topology = build(data, origin)
    if topology.scale is not None:
        topology = _generate(topology, topology.scale.with_sizes(sizes or {}), origin)
    elif sizes:
        raise LabError(f"topology {origin} has no [scale] table, so no size parameters")
    validate(topology, origin)
    return topology


def _parse(text: str, origin: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"topology {origin}: {exc}") from None


def _based_on(base: str, data: dict, origin: str) -> dict:
    """A variant: a shipped topology with the variant's top-level keys in place of its own.

    One level only, so a variant cannot hide which file its network comes from.
    """
    resource = _shipped().joinpath(f"{base}.toml")
    if not isinstance(base, str) or not resource.is_file():
        raise LabError(f"topology {origin}: based_on {base!r} is not a shipped topology")
    merged = _parse(resource.read_text(), base)
    if "based_on" in merged:
        raise LabError(f"topology {origin}: its base {base} is itself based on another")
    every = data.pop("every_chassis", None)
    merged.update(data)
    if every is not None:
        merged["chassis"] = [_merge_chassis(c, every, origin) for c in merged.get("chassis", [])]
    return merged


def _merge_chassis(chassis: dict, every: dict, origin: str) -> dict:
    """A variant's ``[every_chassis]``: tables merged into each base chassis' own
    (``ovs_external_ids`` to switch an ovn-controller option on everywhere)."""
    if not isinstance(every, dict) or not all(isinstance(v, dict) for v in every.values()):
        raise LabError(f"topology {origin}: every_chassis must hold tables only")
    merged = dict(chassis)
    for key, table in every.items():
        merged[key] = {**chassis.get(key, {}), **table}
    return merged


# What a [scale] table generates, so a topology with one must not list it.
_GENERATED = ("chassis", "switch", "router", "port_group", "address_set", "load_balancer",
              "dhcp_options")


def _generate(topology: Topology, scale: Scale, where: str) -> Topology:
    listed = [key for key in _GENERATED if getattr(topology, key)]
    if listed:
        raise LabError(f"topology {where}: has [scale], so it cannot also list "
                       f"{', '.join(listed)}")
    check(scale, where)
    return replace(topology, scale=scale, **expand(scale, topology.network))
