"""No lab's identity in product code: none of the MACs, IPs or service ports the lab
topologies (ofrace/lab/topologies/*.toml) or the lab's own code name appears in a
module of ``ofrace/`` outside ``ofrace/lab/`` — as text or as the integer a packet
field holds (0x02427a7982ca, 0xac120001)."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "ofrace" / "lab"

MAC = re.compile(r"\b[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\b")
IP4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
IP6 = re.compile(r"(?<![\w:])[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])")
HOST_PORT = re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\])\:(\d{4,5})\b")
LAB_STRING = re.compile(r"[\"']([0-9a-fA-F:./\[\]]+)[\"']")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _generic(ip: ipaddress._BaseAddress) -> bool:
    """Addresses every network has (or none): not a lab's identity."""
    docs = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24",
                                                "203.0.113.0/24", "2001:db8::/32")]
    return (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local
            or ip == ipaddress.ip_address("255.255.255.255")
            or any(ip.version == net.version and ip in net for net in docs))


def lab_values(texts) -> tuple[set[int], set[int], set[int]]:
    """(MACs, IPs, service ports >= 1024) named in ``texts``, as integers."""
    macs, ips, ports = set(), set(), set()
    for text in texts:
        for mac in MAC.findall(text):
            value = int(mac.replace(":", ""), 16)
            if value not in (0, 0xFFFFFFFFFFFF):
                macs.add(value)
        for candidate in IP4.findall(text) + IP6.findall(text):
            try:
                ip = ipaddress.ip_address(candidate)
            except ValueError:
                continue
            if not _generic(ip):
                ips.add(ip)
        ports.update(int(p) for p in HOST_PORT.findall(text) if 1024 <= int(p) < 65536)
    return macs, ips, ports


def topology_texts() -> list[str]:
    texts = []
    for path in sorted((LAB / "topologies").glob("*.toml")):
        texts += list(_strings(tomllib.loads(path.read_text())))
    for path in sorted(LAB.rglob("*.py")):   # the lab's own constants (its outside host)
        texts += LAB_STRING.findall(path.read_text())
    return texts


def spellings(macs, ips, ports) -> dict[str, str]:
    """Each value in the ways code could write it -> the value, for the message."""
    found = {}
    for mac in macs:
        text = ":".join(f"{mac:012x}"[i:i + 2] for i in range(0, 12, 2))
        found[text] = found[f"0x{mac:012x}"] = found[f"0x{mac:x}"] = text
    for ip in ips:
        found[str(ip)] = str(ip)
        if ip.version == 4:
            found[f"0x{int(ip):08x}"] = str(ip)
    for port in ports:
        found[str(port)] = f"port {port}"
    return found


def hits(source: str, wanted: dict[str, str]) -> set[str]:
    tokens = set(re.findall(r"[0-9A-Za-z_:.]+", source.lower()))
    tokens |= {t.strip(".:") for t in tokens}
    tokens |= {part for t in tokens for part in re.split(r"[^0-9a-z:.]", t)}
    return {wanted[t] for t in tokens & wanted.keys()}


def product_modules() -> list[Path]:
    return [p for p in sorted((ROOT / "ofrace").rglob("*.py")) if LAB not in p.parents]


def test_the_lab_values_are_read():
    macs, ips, ports = lab_values(topology_texts())
    assert len(macs) > 20 and len(ips) > 20 and 30007 in ports
    assert ipaddress.ip_address("172.18.0.1") in ips           # the kind lab's outside host
    assert 0x02427A7982CA in macs


def test_product_code_names_no_lab_value():
    wanted = spellings(*lab_values(topology_texts()))
    found = {str(p.relative_to(ROOT)): sorted(hits(p.read_text(), wanted))
             for p in product_modules()}
    assert not {path: values for path, values in found.items() if values}


def test_an_injected_lab_value_is_caught():
    """Negative control: each spelling of a lab value the old generator used is found."""
    wanted = spellings(*lab_values(topology_texts()))
    for line in ('outside_ip = int(ipaddress.IPv4Address("172.18.0.1"))',
                 "outside_mac = 0x02427A7982CA", "mac = '02:42:7a:79:82:ca'",
                 'packet["tp_dst"] = 30007', "nw_dst == 0xac120004"):
        assert hits(line, wanted), line
    assert not hits("tp_dst = 80; UNKNOWN = '203.0.113.77'; mac = 0xffffffffffff", wanted)
