"""An HTML page for one replay (a `host_tools.desk.replay.Result`): the recording,
the scores against their targets, water level and temperature plots, an
occupancy timeline per bay and the list of events.

The page is self-contained: inline CSS and SVG, no scripts, no external
URLs. Long series are thinned (lowest and highest point per bucket) so a
week-long recording still makes a small page. Message times are unwrapped
(`Result.timeline`): the node's ticks wrap every 12.4 days, the page's time
axis does not.
"""

import html
import math
from datetime import UTC, datetime
from pathlib import Path

from citynode import sensors as registry
from citynode.sense.flood import ALERT_NAMES as ALERT_LEVELS
from citynode.sense.flood import WaterLevel
from host_tools.desk.score import (
    F1_TARGET,
    FROZEN_MM,
    LATENCY_MEDIAN_TARGET_S,
    MATCH_AFTER_S,
    MATCH_BEFORE_S,
    WATER_MAE_TARGET_MM,
)

ALERT_RANK = {name: rank for rank, name in enumerate(ALERT_LEVELS)}
MAX_PLOT_POINTS = 2000
MAX_EVENT_ROWS = 500
BAY_TYPES = tuple(t for t in registry.TYPES if registry.is_bay(t))
MS_PER_HOUR = 3_600_000

COLOURS = {"published": "#1f5fa8", "truth": "#2e9e44", "normal": "#607d8b", "watch": "#c9a100",
           "warning": "#e0701b", "danger": "#c62828", "obstructed": "#9e9e9e", "fault": "#e57373",
           "occupied": "#5c6bc0", "temp": "#d84315"}

CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:1100px;margin:1em auto;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:3px 10px;border-bottom:1px solid #e4e4e4;
text-align:left;vertical-align:top} th{background:#f3f3f3} .pass{color:#1b7f2e} .fail{color:#c62828;
font-weight:bold} .banner{padding:.5em 1em;border-radius:4px;margin:1em 0} .ok{background:#e6f4ea}
.bad{background:#fdecea} svg{width:100%;height:auto;display:block;margin:.4em 0 1em}
.note{color:#666} td.num{text-align:right;font-variant-numeric:tabular-nums}
"""


def esc(value):
    """`value` as text safe for HTML content and attribute values."""
    return html.escape(str(value))


def fmt(value, pattern="{:.2f}", unit=""):
    """`value` through `pattern` plus `unit`, or 'n/a' when not measurable."""
    return "n/a" if value is None else pattern.format(value) + unit


def clock(t_ms):
    """HH:MM:SS since the start of the recording (hours may pass 24)."""
    s = int(t_ms // 1000)
    return "%02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)


def utc_time(header, t_ms):
    """The UTC ISO time of `t_ms` after the recording's start."""
    moment = datetime.fromtimestamp(header.get("start", 0) + t_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def timeline(result):
    """The replay's messages, times in ms since the recording's start."""
    return result.timeline


def events(result):
    """The replay's events as (ms since the recording's start, payload)."""
    return [(t, p) for t, topic, p in result.timeline if topic == "event"]


def downsample(points, max_points=MAX_PLOT_POINTS):
    """At most `max_points` of the (x, y) `points`: per bucket of
    neighbours, the lowest and the highest, in order of x."""
    if len(points) <= max_points:
        return list(points)
    buckets = max_points // 2
    size = len(points) / buckets
    out = []
    for b in range(buckets):
        chunk = points[int(b * size):int((b + 1) * size)]
        if chunk:
            lo, hi = min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])
            out += [lo] if lo is hi else sorted((lo, hi))
    return out


def nice_step(span, max_ticks):
    """The smallest step of 1, 2 or 5 × 10^k giving at most `max_ticks` ticks over `span` (> 0)."""
    magnitude = 10 ** math.floor(math.log10(span / max_ticks))
    return next(m * magnitude for m in (1, 2, 5, 10) if span / (m * magnitude) <= max_ticks)


class Frame:
    """A plot area: maps (hours, value) to SVG coordinates and draws axes."""

    def __init__(self, hours, y_lo, y_hi, height, width=960, left=64, right=16, top=34, bottom=34):
        self.hours, self.y_lo, self.y_hi = hours, y_lo, y_hi
        self.width, self.height, self.left, self.top = width, height, left, top
        self.plot_w, self.plot_h = width - left - right, height - top - bottom

    def x(self, h):
        """The SVG x of `h` hours since the start."""
        return self.left + h / self.hours * self.plot_w

    def y(self, v):
        """The SVG y of value `v`."""
        return self.top + (self.y_hi - v) / (self.y_hi - self.y_lo) * self.plot_h

    def clip(self, clip_id):
        """A clip path for the plot area, so off-scale values stop at its edge."""
        return '<clipPath id="%s"><rect x="%d" y="%d" width="%d" height="%d"/></clipPath>' % (
            clip_id, self.left, self.top, self.plot_w, self.plot_h)

    def x_axis(self):
        """Hour ticks under the plot area."""
        step = next(s for s in (0.25, 0.5, 1, 2, 3, 6, 12, 24, 48, 168, 1e9) if self.hours / s <= 14)
        base = self.top + self.plot_h
        out = ['<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>' % (
            self.left, base, self.left + self.plot_w, base)]
        for i in range(int(self.hours / step + 1e-9) + 1):
            x = self.x(i * step)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444"/>'
                       '<text x="%.1f" y="%d" text-anchor="middle" font-size="11">%g h</text>'
                       % (x, base, x, base + 4, x, base + 16, i * step))
        return "".join(out)

    def y_axis(self, unit):
        """Value ticks, labels and light grid lines left of and across the plot."""
        step = nice_step(self.y_hi - self.y_lo, 7)
        out = []
        for k in range(math.ceil(self.y_lo / step), math.floor(self.y_hi / step) + 1):
            v = k * step
            y = self.y(v)
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e8e8e8"/>'
                       '<text x="%d" y="%.1f" text-anchor="end" font-size="11">%g</text>'
                       % (self.left, y, self.left + self.plot_w, y, self.left - 6, y + 4, round(v, 6)))
        out.append('<text x="12" y="%d" font-size="11" transform="rotate(-90 12 %d)" text-anchor="middle">'
                   '%s</text>' % (self.top + self.plot_h // 2, self.top + self.plot_h // 2, esc(unit)))
        return "".join(out)

    def span(self, h0, h1, colour, y0=None, y1=None, opacity=0.25):
        """A shaded band from h0 to h1 (hours), full height unless y0/y1 are given."""
        top = self.top if y0 is None else y0
        bottom = self.top + self.plot_h if y1 is None else y1
        return '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%.2f"/>' % (
            self.x(h0), top, max(self.x(h1) - self.x(h0), 2.0), bottom - top, colour, opacity)

    def line(self, points, colour, clip_id, width=1.5):
        """A polyline through the (hours, value) points, thinned and clipped."""
        coords = " ".join("%.1f,%.1f" % (self.x(h), self.y(v)) for h, v in downsample(points))
        return '<polyline points="%s" fill="none" stroke="%s" stroke-width="%s" clip-path="url(#%s)"/>' % (
            coords, colour, width, clip_id)


def svg(frame, body, title, legend=(), css_class="plot"):
    """An <svg> element of `frame`'s size with a title and a legend row of (label, colour)."""
    keys, x = [], frame.left
    for label, colour in legend:
        keys.append('<rect x="%d" y="8" width="14" height="10" fill="%s"/>'
                    '<text x="%d" y="17" font-size="12">%s</text>' % (x, colour, x + 18, esc(label)))
        x += 28 + 7 * len(label)
    return '<svg class="%s" viewBox="0 0 %d %d" role="img"><title>%s</title>%s%s</svg>' % (
        css_class, frame.width, frame.height, esc(title), "".join(keys), "".join(body))


def merge_spans(spans, gap):
    """(start, end) spans, sorted, with those less than `gap` apart joined."""
    out = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def spans_when(states, end):
    """(start, end) spans during which the state was true, from time-ordered
    (time, state) pairs; a state still true at the last pair lasts until `end`."""
    spans, since = [], None
    for t, state in states:
        if state and since is None:
            since = t
        elif not state and since is not None:
            spans.append((since, t))
            since = None
    return spans + ([(since, end)] if since is not None else [])


def fault_spans(result, sid, end):
    """(start, end) hours during which sensor `sid` had at least one fault active."""
    active, states = set(), []
    for t, p in events(result):
        if p.get("kind") == "fault" and p.get("sensor") == sid:
            (active.add if p.get("active") else active.discard)(p.get("fault"))
            states.append((t / MS_PER_HOUR, bool(active)))
    return spans_when(states, end)


def recording_hours(result):
    """The recording's length in hours (from the header, else the last message)."""
    last = max([t for t, _, _ in timeline(result)] + [r["t"] for r in result.truth] + [1])
    return max(result.header.get("duration_s") or 0, last / 1000) / 3600


def score_rows(scores):
    """(metric, value, target, passed) rows; passed is None where there is no target."""
    def at_most(v, limit):
        return None if v is None else v <= limit

    rows = []
    occ = scores.get("occupancy")
    if occ:
        rows += [
            ("Occupancy F1", fmt(occ["f1"], "{:.3f}"), "≥ %g" % F1_TARGET,
             None if occ["f1"] is None else occ["f1"] >= F1_TARGET),
            ("Occupancy precision / recall", "%s / %s" % (fmt(occ["precision"], "{:.3f}"),
                                                          fmt(occ["recall"], "{:.3f}")), "", None),
            ("Transitions: found / false / missed", "%d: %d / %d / %d" % (
                occ["transitions"], occ["tp"], occ["fp"], occ["fn"]), "", None),
            ("Latency median", fmt(occ["latency_median_s"], "{:.1f}", " s"),
             "≤ %g s" % LATENCY_MEDIAN_TARGET_S, at_most(occ["latency_median_s"], LATENCY_MEDIAN_TARGET_S)),
            ("Latency p90 / max", "%s / %s" % (fmt(occ["latency_p90_s"], "{:.1f}", " s"),
                                               fmt(occ["latency_max_s"], "{:.1f}", " s")), "", None)]
    for sid, w in scores.get("water", {}).items():
        mae = w["mae_mm"]
        rows.append(("%s: level error (MAE)" % sid, "n/a" if mae is None else "%.2f mm (%.2f cm)" % (
            mae, mae / 10), "≤ %g mm" % WATER_MAE_TARGET_MM, at_most(mae, WATER_MAE_TARGET_MM)))
        rows.append(("%s: MAE when wet / max error" % sid, "%s / %s" % (
            fmt(w["mae_wet_mm"], unit=" mm"), fmt(w["max_error_mm"], "{:.1f}", " mm")), "", None))
        for c in w["crossings"]:
            delay = c["delay_s"]
            value = "missed" if delay is None else "alert %.1f s %s the true level (interval %s)" % (
                abs(delay), "before" if delay < 0 else "after", fmt(c["interval_s"], "{:g}", " s"))
            measurable = delay is None or c["interval_s"] is not None
            rows.append(("%s: %s crossing (%s mm) at %s" % (sid, c["alert"], c["threshold_mm"],
                                                           clock(c["true_t_s"] * 1000)),
                         value, "≤ 2 sampling intervals", c["within_2_intervals"] if measurable else None))
        if not w["crossings"]:
            rows.append(("%s: alert crossings" % sid, "none: the true level crossed no threshold", "", None))
        false = w["false_alerts"]
        rows.append(("%s: false alerts" % sid, "%d%s" % (len(false), "".join(
            ", %s at %s" % (a["alert"], clock(a["t_s"] * 1000)) for a in false)), "0", not false))
        early = w["early_alerts"]
        rows.append(("%s: early alerts (the true level still below the threshold less the hysteresis)" % sid,
                     "%d%s" % (len(early), "".join(", %s at %s" % (a["alert"], clock(a["t_s"] * 1000))
                                                   for a in early)), "", None))
        frozen = w["frozen"]
        rows.append(("%s: frozen levels (off by more than %g mm an hour after the road is dry)" % (
            sid, FROZEN_MM), "%d%s" % (len(frozen), "".join(
                ", %s mm (dry at %s)" % (f["level_mm"], clock(f["dry_t_s"] * 1000)) for f in frozen)),
            "0", not frozen))
    gaps = scores.get("gaps", [])
    if gaps:
        rows.append(("Silences the node could not bridge (detectors restarted)", "%d: %s" % (
            len(gaps), ", ".join("%s at %s (%s)" % (g["sensor"], clock(g["t_s"] * 1000),
                                                    "?" if g["gap_s"] is None else "%s s" % g["gap_s"])
                                 for g in gaps)), "", None))
    return rows


def summary(result):
    """The recording facts table, a pass/fail banner and the scores table."""
    h, stats = result.header, result.stats or {}
    facts = [("Recording", result.path), ("Node", h.get("node", "?")), ("Board", h.get("board", "?")),
             ("Start", utc_time(h, 0)), ("Duration", "%.1f h" % recording_hours(result)),
             ("Runtime", result.runtime),
             ("Samples read / taken", "%s / %s" % (stats.get("samples", "?"), stats.get("taken", "?"))),
             ("Truth records", stats.get("truth", len(result.truth))),
             ("Messages published", "%d (%d events)" % (len(result.messages), len(result.events)))]
    out = ["<table>"] + ["<tr><th>%s</th><td>%s</td></tr>" % (esc(k), esc(v)) for k, v in facts]
    out.append("</table>")
    rows = score_rows(result.scores or {})
    verdicts = [r[3] for r in rows if r[3] is not None]
    if not verdicts:
        out.append('<p class="banner bad">Nothing in this recording could be scored against a target.</p>')
    elif all(verdicts):
        out.append('<p class="banner ok">All %d targets met.</p>' % len(verdicts))
    else:
        out.append('<p class="banner bad">%d of %d targets missed.</p>' % (
            verdicts.count(False), len(verdicts)))
    if rows:
        out.append("<table><tr><th>Score</th><th>Value</th><th>Target</th><th>Result</th></tr>")
        for metric, value, target, passed in rows:
            mark = "" if passed is None else ('<span class="pass">✔ pass</span>' if passed
                                              else '<span class="fail">✘ fail</span>')
            out.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                esc(metric), esc(value), esc(target), mark))
        out.append("</table>")
    return "".join(out)


def water_plot(result, sensor, hours, clip_id):
    """Published and true level over time, with thresholds, alerts, obstructions and faults."""
    sid = sensor["id"]
    thresholds = WaterLevel(sensor["id"], [], sensor).thresholds
    readings = [(t / MS_PER_HOUR, p) for t, topic, p in timeline(result)
                if topic == "water" and p.get("sensor", sid) == sid]
    true = [(r["t"] / MS_PER_HOUR, r["level_mm"]) for r in result.truth
            if r.get("truth") == sid and "level_mm" in r]
    # Scale to the true level (else to the trusted readings) so an obstruction doesn't flatten the plot.
    scale = [v for _, v in true] or [p["level_mm"] for _, p in readings if p.get("state") == "clear"
                                     and "fault" not in p]
    frame = Frame(hours, -50, max(scale + list(thresholds)) + 100, 340)
    obstructed = spans_when([(h, p.get("state") == "obstructed") for h, p in readings], hours)
    faults = fault_spans(result, sid, hours)
    body = [frame.clip(clip_id)]
    for colour, spans in ((COLOURS["obstructed"], obstructed), (COLOURS["fault"], faults)):
        body += [frame.span(a, b, colour, opacity=0.3) for a, b in merge_spans(spans, hours / 500)]
    body.append(frame.y_axis("level (mm)"))
    for name, mm in zip(ALERT_LEVELS[1:], thresholds, strict=False):
        y, colour = frame.y(mm), COLOURS[name]
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>'
                    '<text x="%d" y="%.1f" text-anchor="end" font-size="11" fill="%s">%s %d mm</text>'
                    % (frame.left, y, frame.left + frame.plot_w, y, colour,
                       frame.left + frame.plot_w - 4, y - 4, colour, name, mm))
    body.append(frame.line([(h, p["level_mm"]) for h, p in readings], COLOURS["published"], clip_id))
    if true:
        body.append(frame.line(true, COLOURS["truth"], clip_id, 2))
    alerts = [(t / MS_PER_HOUR, p) for t, p in events(result)
              if p.get("kind") == "alert" and p.get("sensor") == sid]
    for i, (h, p) in enumerate(alerts):
        name, was = p.get("alert"), p.get("was")
        rising = ALERT_RANK.get(name, len(ALERT_LEVELS)) > ALERT_RANK.get(was, -1)
        colour, x, label_y = COLOURS.get(name, "#000"), frame.x(h), frame.top + 12 + 12 * (i % 4)
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5"/>'
                    '<text x="%.1f" y="%d" font-size="11" fill="%s">%s %s</text>'
                    % (x, frame.top, x, frame.top + frame.plot_h, colour, x + 3, label_y, colour,
                       "▲" if rising else "▼", esc(name)))
    body.append(frame.x_axis())
    legend = [("published level", COLOURS["published"])] + [("true level", COLOURS["truth"])] * bool(true)
    legend += [("obstructed", COLOURS["obstructed"]), ("sensor fault", COLOURS["fault"])]
    return svg(frame, body, "Water level at %s" % sid, legend)


def temperature_plot(result, hours, clip_id):
    """Air temperature from the env messages over time (empty if there are none)."""
    points = [(t / MS_PER_HOUR, p["temp_c"]) for t, topic, p in timeline(result)
              if topic == "env" and p.get("temp_c") is not None]
    if not points:
        return ""
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    frame = Frame(hours, math.floor(lo - 1), math.ceil(hi + 1), 180)
    body = [frame.clip(clip_id), frame.y_axis("°C"), frame.line(points, COLOURS["temp"], clip_id),
            frame.x_axis()]
    return svg(frame, body, "Air temperature", [("air temperature (°C)", COLOURS["temp"])])


def unmatched(true_tr, found_tr):
    """(missed, false) transition times: each true (time, state) is matched to
    the first unused detection of that state close enough to it, as the scores do."""
    used = [False] * len(found_tr)
    missed = []
    for tt, state in true_tr:
        for i, (ft, fstate) in enumerate(found_tr):
            if not used[i] and fstate == state and -MATCH_BEFORE_S <= (ft - tt) * 3600 <= MATCH_AFTER_S:
                used[i] = True
                break
        else:
            missed.append(tt)
    return missed, [ft for (ft, _), u in zip(found_tr, used, strict=True) if not u]


def bay_timeline(result, bay, hours):
    """Two strips for one bay: true and detected occupancy, with faults, misses and false detections."""
    frame = Frame(hours, 0, 1, 120, left=80, top=30, bottom=30)
    true = [(r["t"] / MS_PER_HOUR, r["occupied"]) for r in result.truth if r.get("truth") == bay]
    found = [(t / MS_PER_HOUR, p["state"] == "occupied") for t, p in events(result)
             if p.get("kind") == "occupancy" and p.get("sensor") == bay]
    truth_y, detected_y = 36, 66
    body = []
    for label, y, states in (("truth", truth_y, true), ("detected", detected_y, found)):
        body.append('<text x="%d" y="%d" text-anchor="end" font-size="12">%s</text>'
                    '<rect x="%d" y="%d" width="%d" height="20" fill="#eee"/>'
                    % (frame.left - 8, y + 14, label, frame.left, y, frame.plot_w))
        body += [frame.span(a, b, COLOURS["occupied"], y, y + 20, 0.9) for a, b in spans_when(states, hours)]
    body += [frame.span(a, b, COLOURS["fault"], 32, 90, 0.5) for a, b in fault_spans(result, bay, hours)]
    true_changes = [s for i, s in enumerate(true) if i and s[1] != true[i - 1][1]]
    if true_changes:
        missed, false = unmatched(true_changes, found)
        marks = [(h, truth_y, COLOURS["danger"]) for h in missed]
        marks += [(h, detected_y, COLOURS["warning"]) for h in false]
        body += ['<circle cx="%.1f" cy="%d" r="5" fill="none" stroke="%s" stroke-width="2.5"/>'
                 % (frame.x(h), y + 10, colour) for h, y, colour in marks]
    body.append(frame.x_axis())
    legend = [("occupied", COLOURS["occupied"]), ("sensor fault", COLOURS["fault"]),
              ("○ missed (truth row)", COLOURS["danger"]), ("○ false detection", COLOURS["warning"])]
    return svg(frame, body, "Occupancy of %s" % bay, legend, "timeline")


def event_detail(p):
    """One line describing an event payload."""
    kind = p.get("kind")
    if kind == "occupancy":
        return p.get("state", "?")
    if kind == "alert":
        return "%s → %s at %s mm, %s mm/min" % (p.get("was"), p.get("alert"), p.get("level_mm"),
                                               p.get("rate_mm_min"))
    if kind == "fault":
        return "%s %s" % (p.get("fault"), "raised" if p.get("active") else "cleared")
    if kind == "gap":
        return "no readings for %s: detectors restarted" % (
            "an unknown time" if p.get("gap_s") is None else "%s s" % p["gap_s"])
    return ", ".join("%s=%s" % kv for kv in p.items() if kv[0] not in ("kind", "sensor", "ts"))


def events_table(result):
    """All events (up to MAX_EVENT_ROWS) with time since start and UTC time."""
    events_ = events(result)
    if not events_:
        return "<p>The node raised no events.</p>"
    out = ['<table id="events"><tr><th>Since start</th><th>UTC</th><th>Sensor</th><th>Kind</th>'
           "<th>Detail</th></tr>"]
    for t, p in events_[:MAX_EVENT_ROWS]:
        out.append("<tr><td class=num>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            clock(t), utc_time(result.header, t), esc(p.get("sensor", "")), esc(p.get("kind", "")),
            esc(event_detail(p))))
    out.append("</table>")
    if len(events_) > MAX_EVENT_ROWS:
        out.append('<p class="note">Showing the first %d of %d events.</p>' % (MAX_EVENT_ROWS, len(events_)))
    return "".join(out)


def render(result):
    """The whole report page for `result` as an HTML string."""
    h = result.header
    hours = recording_hours(result)
    sensors = h.get("sensors", [])
    title = "citynode replay: %s" % h.get("node", "?")
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>%s</title><style>%s</style>'
           "</head><body><h1>%s</h1>" % (esc(title), CSS, esc(title))]
    if h.get("notes"):
        out.append('<p class="note">%s</p>' % esc(h["notes"]))
    out.append("<h2>Summary</h2>" + summary(result))
    for n, s in enumerate(x for x in sensors if x.get("type") == "water"):
        plot = water_plot(result, s, hours, "clip-w%d" % n)
        out.append("<h2>Water level: %s</h2>%s" % (esc(s["id"]), plot))
    temperature = temperature_plot(result, hours, "clip-env")
    if temperature:
        out.append("<h2>Air temperature</h2>" + temperature)
    per_bay = (result.scores or {}).get("occupancy", {}).get("bays", {})
    for s in (x for x in sensors if x.get("type") in BAY_TYPES):
        sc = per_bay.get(s["id"])
        facts = "" if sc is None else " — F1 %s, %d transitions, latency median %s" % (
            fmt(sc["f1"], "{:.3f}"), sc["transitions"], fmt(sc["latency_median_s"], "{:.1f}", " s"))
        out.append("<h2>Bay %s <small>(%s%s)</small></h2>%s" % (esc(s["id"]), esc(s["type"]), esc(facts),
                                                               bay_timeline(result, s["id"], hours)))
    out.append("<h2>Events</h2>" + events_table(result) + "</body></html>")
    return "".join(out)


def write_report(result, path):
    """Write the report page for `result` to `path`; returns the path."""
    path = Path(path)
    path.write_text(render(result), encoding="utf-8")
    return path
