"""``ofrace audit --html FILE``: the audit as one self-contained page.

Drawn from the ``--json`` document (``audit_json``, with the expected flows), so page and
JSON say the same.  Per chassis: the counts, then what is MISSING (each logical flow with
the NB rows behind it and its datapaths' CMS names), stale, broken, notices, garbled
lines, and why the expected gaps are expected.  No script at all: ``<details>`` folds the
long lists.  Every string is escaped (``trace_picture.text``); nothing is fetched.
"""

from __future__ import annotations

from ofrace.render.trace_picture import text

STYLE = """
body { font: 14px sans-serif; margin: 16px; color: #24292f; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr:nth-child(even) { background: #f6f8fa; }
.bad { color: #cf222e; font-weight: bold; } .warn { color: #9a6700; font-weight: bold; }
.ok { color: #1a7f37; }
.item { margin: 6px 0 6px 12px; font: 12px monospace; white-space: pre-wrap;
        word-break: break-all; }
.nb { color: #9a6700; } .dim { color: #57606a; }
summary { cursor: pointer; }
"""

GARBLED_SHOWN = 20


def _cell(n: int, cls: str) -> str:
    return f'<td class="{cls}">{n}</td>' if n else "<td>0</td>"


def _summary_table(doc: dict) -> str:
    rows = ["<table><tr><th>chassis</th><th>installed</th><th>expected</th><th>MISSING</th>"
            "<th>stale</th><th>broken</th><th>garbled</th></tr>"]
    for name, ch in doc["chassis"].items():
        link = f'<a href="#chassis-{text(name)}">{text(name)}</a>'
        if "counts" not in ch:
            rows.append(f'<tr><td>{link}</td><td colspan="6" class="warn">not audited: '
                        f"{text(ch['unreadable'])}</td></tr>")
            continue
        counts = ch["counts"]
        rows.append(f"<tr><td>{link}</td><td>{counts['installed']}</td>"
                    f"<td>{counts['expected']}</td>{_cell(counts['missing'], 'bad')}"
                    f"{_cell(len(ch['stale']), 'bad')}{_cell(len(ch['broken']), 'bad')}"
                    f"{_cell(len(ch['garbled']), 'warn')}</tr>")
    return "".join(rows) + "</table>"


def _missing(item: dict) -> str:
    dps = ", ".join(f"{dp} [{item['datapath_cms'][dp]}]" if dp in item["datapath_cms"]
                    else dp for dp in item["datapaths"])
    out = (f'<div class="item"><span class="bad">MISSING</span> {text(item["stage"])} '
           f'({text(item["pipeline"])} table {item["table_id"]}, priority {item["priority"]}) '
           f'on {text(dps)}, lflow {text(item["uuid"])}\n  match:   {text(item["match"])}\n'
           f'  actions: {text(item["actions"])}')
    for nb in item.get("northbound") or []:
        out += f'\n  <span class="nb">from NB: {text(nb)}</span>'
    return out + "</div>"


def _chassis(name: str, ch: dict) -> str:
    out = [f'<h2 id="chassis-{text(name)}">{text(name)}</h2>']
    if "counts" not in ch:
        out.append(f'<p class="warn">not audited: {text(ch["unreadable"])}</p>')
        return "\n".join(out)
    out.extend(_missing(item) for item in ch["missing"])
    out.extend(f'<div class="item"><span class="bad">STALE</span> cookie {text(s["cookie"])}: '
               f'{text(s["why"])}\n  {text(s["flow"])}</div>' for s in ch["stale"])
    out.extend(f'<div class="item"><span class="bad">BROKEN</span> ({text(p["kind"])}): '
               f'{text(p["message"])}</div>' for p in ch["broken"])
    out.extend(f'<div class="item"><span class="warn">NOTICE</span> ({text(n["kind"])}): '
               f'{text(n["message"])}</div>' for n in ch["notices"])
    if ch["garbled"]:
        lines = "\n".join(text(line) for line in ch["garbled"][:GARBLED_SHOWN])
        more = len(ch["garbled"]) - GARBLED_SHOWN
        out.append(f'<details><summary class="warn">{len(ch["garbled"])} flow line(s) could '
                   f'not be read</summary><div class="item">{lines}'
                   f'{f"{chr(10)}… and {more} more (--json lists them all)" if more > 0 else ""}'
                   "</div></details>")
    if not (ch["missing"] or ch["stale"] or ch["broken"]):
        out.append('<p class="ok">nothing MISSING, stale or broken</p>')
    reasons = "".join(f"<tr><td>{text(reason)}</td><td>{count}</td></tr>"
                      for reason, count in sorted(ch["expected_reasons"].items(),
                                                  key=lambda kv: -kv[1]))
    out.append(f"<details><summary>why {ch['counts']['expected']} logical flows have no "
               f"OpenFlow flows here (expected)</summary><table>{reasons}</table></details>")
    return "\n".join(out)


def audit_page(doc: dict) -> str:
    """The HTML page of an audit document (``audit_json``'s)."""
    found = any(ch.get("missing") or ch.get("stale") or ch.get("broken")
                for ch in doc["chassis"].values())
    if doc["clean"]:
        verdict = '<p class="ok">clean: every logical flow without OpenFlow flows has a ' \
                  "reason; no stale flows; nothing broken</p>"
    elif found:
        verdict = '<p class="bad">MISSING, stale or broken items below</p>'
    else:
        verdict = '<p class="warn">not everything could be audited (see below)</p>'
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        "<title>ofrace audit</title>", f"<style>{STYLE}</style></head><body>",
        "<h1>ofrace audit: logical flows against OpenFlow flows, per chassis</h1>", verdict,
        _summary_table(doc),
        *(_chassis(name, ch) for name, ch in doc["chassis"].items()),
        "</body></html>"])

