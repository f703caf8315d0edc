"""``ofrace trace --html FILE``: the picture and, one click away, each hop's flows.

One self-contained file: inline CSS, inline SVG (``trace_picture``), a few lines of
vanilla script, nothing fetched (it must open from ``file://`` on an air-gapped laptop).
The details of every hop are rendered here, escaped, and hidden; the script only shows
the one clicked, so no node text ever reaches ``innerHTML``.
"""

from __future__ import annotations

from pathlib import Path

from ofrace.annotate.session import TraceResult
from ofrace.errors import EnvironmentFailure, InputError
from ofrace.render.trace_json import print_trace_json, trace_json
from ofrace.render.trace_picture import VERDICT_MARK, picture, stations, text, trace_svg
from ofrace.render.trace_text import print_trace_result

PAGE_STYLE = """
body { font: 14px sans-serif; margin: 0; color: #24292f; }
header { padding: 10px 16px; border-bottom: 1px solid #d0d7de; }
header h1 { font-size: 18px; margin: 0 0 6px; }
.request { font: 12px monospace; white-space: pre-wrap; word-break: break-all; }
.verdicts li { list-style: none; }
.v-delivered { color: #1a7f37; } .v-dropped, .v-error, .v-loop { color: #cf222e; }
.v-controller, .v-unknown { color: #9a6700; } .v-left, .v-host { color: #0969da; }
main { display: flex; align-items: flex-start; }
#picture { flex: 0 0 auto; overflow: auto; max-width: 72vw; }
#details { flex: 1 1 auto; position: sticky; top: 0; max-height: 100vh; overflow: auto;
           padding: 8px 16px; border-left: 1px solid #d0d7de; min-width: 320px; }
#details h3 { margin: 4px 0; font-size: 15px; }
#details h4 { margin: 10px 0 2px; font-size: 13px; color: #1f6feb; }
.detail-station.current { background: #fff8c5; }
.ev { margin: 2px 0 2px 8px; font: 12px monospace; white-space: pre-wrap;
      word-break: break-all; }
.ev .stage { color: #0550ae; font-weight: bold; } .ev .nb { color: #9a6700; }
.ev .of { color: #57606a; } .ev .chg { color: #1a7f37; }
.counters { color: #57606a; } .counters.unused { color: #9a6700; font-weight: bold; }
.legend { font-size: 12px; color: #57606a; }
"""

PAGE_SCRIPT = """
(function () {
  function show(hop, station) {
    document.querySelectorAll('section.detail').forEach(function (s) {
      s.hidden = s.id !== 'detail-' + hop;
    });
    document.getElementById('details-hint').hidden = true;
    document.querySelectorAll('.current').forEach(function (el) {
      el.classList.remove('current');
    });
    var box = document.getElementById('st-' + hop + '-' + station);
    if (box) { box.classList.add('current'); }
    var part = document.getElementById('detail-st-' + hop + '-' + station);
    if (part) { part.classList.add('current'); part.scrollIntoView({block: 'nearest'}); }
  }
  document.querySelectorAll('.station, .verdict').forEach(function (el) {
    function pick() { show(el.dataset.hop, el.dataset.station || '0'); }
    el.addEventListener('click', pick);
    el.addEventListener('keydown', function (e) { if (e.key === 'Enter') { pick(); } });
  });
})();
"""


def _counters(ev: dict) -> str:
    c = ev.get("counters")
    if c is None:
        return ""
    if c["unused"]:
        return (f' <span class="counters unused">n_packets=0 n_bytes={c["n_bytes"]} '
                "never hit</span>")
    return f' <span class="counters">n_packets={c["n_packets"]} n_bytes={c["n_bytes"]}</span>'


def _event_html(ev: dict) -> str:
    """One event, with what ``--detailed`` prints for it."""
    if ev["kind"] != "flow":
        out = f'<div class="ev">{text(ev["text"])}'
        for c in ev.get("changes") or []:
            out += f'\n  <span class="chg">{text(c["field"])} {text(c["before"])} → ' \
                   f'{text(c["after"])}</span>'
        return out + "</div>"
    lines = []
    lf = ev.get("logical_flow")
    if lf:
        lines.append(f'<span class="stage">{text(lf["stage"])}</span> '
                     f'({text(lf["pipeline"])}): {text(lf["match"])} → '
                     f'{text(lf["actions"])}')
        lines.extend(f'  <span class="nb">{text(nb)}</span>' for nb in ev["northbound"])
    else:
        lines.append(f'<span class="of">{text(ev.get("owner") or "physical flow")}</span>')
    lines.extend(f'  <span class="chg">{text(c["field"])} {text(c["before"])} → '
                 f'{text(c["after"])}</span>' for c in ev["changes"])
    lines.append(f'  <span class="of">{text(ev["bridge"])} table {ev["table"]} priority '
                 f'{ev["priority"]} cookie {text(ev["cookie"])}: {text(ev["flow"])}</span>'
                 f'{_counters(ev)}')
    return '<div class="ev flow">' + "\n".join(lines) + "</div>"


def _hop_details(number: int, part: str, hop: dict) -> str:
    out = [f'<section class="detail {part}" id="detail-{number}" hidden>',
           f"<h3>{'reply · ' if part == 'reply' else ''}{text(hop['chassis'])} — "
           f"{text(hop['entry'])} on bridge {text(hop['bridge'])}</h3>",
           f'<div class="ev">in: {text(hop["packet_in"]["summary"])}</div>']
    for note in hop["notes"]:
        out.append(f'<div class="ev nb">✎ {text(note)}</div>')
    for k, st in enumerate(stations(hop)):
        out.append(f'<div class="detail-station" id="detail-st-{number}-{k}">'
                   f"<h4>{text(st.name)}{' — ' + text(st.cms) if st.cms else ''}</h4>")
        out.extend(_event_html(ev) for ev in st.events)
        out.append("</div>")
    for v in hop["verdicts"]:
        out.append(f'<div class="ev v-{text(v["kind"])}">⇒ {text(v["text"])}\n'
                   f'  out: {text(v["packet"]["summary"])}</div>')
    out.append("</section>")
    return "\n".join(out)


def _verdict_list(title: str, verdicts: list[dict]) -> str:
    items = "".join(f'<li class="v-{text(v["kind"])}">{VERDICT_MARK.get(v["kind"], "•")} '
                    f'{text(v["text"])}</li>' for v in verdicts)
    return f'<div><b>{title}</b><ul class="verdicts">{items}</ul></div>'


def _path_flows(doc: dict) -> tuple[int, int]:
    """Flows on the path with counters, and of them those never hit."""
    seen = unused = 0
    for _, hop in picture(doc).hops:
        for ev in hop["events"]:
            if ev["kind"] == "flow" and ev.get("counters"):
                seen += 1
                unused += ev["counters"]["unused"]
    return seen, unused


def trace_page(doc: dict) -> str:
    """The HTML page of a trace document (``trace_json``'s, with or without its reply)."""
    pic = picture(doc)
    request = doc["request"]
    asked = request.get("expression") or " ".join(
        f"{k} {request[k]}" for k in ("from", "to", "protocol") if request.get(k))
    seen, unused = _path_flows(doc)
    reply = doc.get("reply") or {}
    head = [f'<div class="request">{text(asked)}\nentered: {text(request.get("entry"))} on '
            f'{text(request.get("chassis"))}</div>',
            _verdict_list("Result", doc["verdicts"])]
    if reply.get("run"):
        head.append(_verdict_list("Reply", reply["verdicts"]))
    elif reply:
        head.append(f"<div><b>Reply</b>: not traced: {text(reply.get('why'))}</div>")
    logical = doc.get("check_logical")
    if logical:
        cls = "v-delivered" if logical["agree"] else "v-dropped"
        head.append(f'<div><b>Logical view (ovn-trace)</b>: <span class="{cls}">'
                    f'{text(logical["summary"])}</span></div>')
    head.append(f'<div class="legend">{seen} OpenFlow flows on the path carry counters; '
                f"{unused} of them had n_packets=0 when the node was read (⚠ on a box). "
                "Blue: the request; orange: the reply. Click a box for its logical and "
                "OpenFlow flows.</div>")
    details = [_hop_details(n, part, hop) for n, (part, hop) in enumerate(pic.hops)]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>ofrace trace — {text(request.get('chassis'))}</title>",
        f"<style>{PAGE_STYLE}</style></head><body>",
        "<header><h1>ofrace trace</h1>", *head, "</header>",
        '<main><div id="picture">', trace_svg(doc), "</div>",
        '<aside id="details"><p id="details-hint">Click a box to see its flows.</p>',
        *details, "</aside></main>",
        f"<script>{PAGE_SCRIPT}</script>", "</body></html>"])


def trace_document(result: TraceResult) -> dict:
    """The ``--json`` document the pictures are drawn from (one packet and its reply)."""
    if result.conversation is not None:
        raise InputError("--html/--svg draw one packet and its reply, not --conversation "
                         "(use --step NAME for one packet of it)")
    doc = trace_json(result.annotated, result.request, result.back, result.back_request,
                     result.reply_not_run)
    if result.logical is not None:
        doc["check_logical"] = result.logical
    return doc


def write_page(path: str, content: str) -> None:
    """A page or picture to the file the user named; a failure is the environment's."""
    try:
        Path(path).write_text(content, encoding="utf-8")
    except OSError as err:
        raise EnvironmentFailure(f"cannot write {path}: {err.strerror or err}") from err


def write_trace_pictures(result: TraceResult, html_file: str | None,
                         svg_file: str | None) -> None:
    """``--html FILE`` and ``--svg FILE``."""
    if not html_file and not svg_file:
        return
    doc = trace_document(result)
    if html_file:
        write_page(html_file, trace_page(doc))
    if svg_file:
        write_page(svg_file, '<?xml version="1.0" encoding="utf-8"?>\n'
               + trace_svg(doc, standalone=True))


def print_trace(result: TraceResult, level: str | None, as_json: bool,
                html_file: str | None = None, svg_file: str | None = None) -> None:
    """``ofrace trace``'s output: the pictures asked for, then the JSON or the text."""
    write_trace_pictures(result, html_file, svg_file)
    if as_json:
        print_trace_json(result)
    else:
        print_trace_result(result, level)
