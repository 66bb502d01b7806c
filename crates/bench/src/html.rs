//! The HTML report: one self-contained page (inline CSS, inline SVG drawn
//! here, no scripts, no external assets), so it can be mailed or attached to
//! an issue and still open anywhere.

use crate::report::{Report, fmt_ratio, fmt_us};
use crate::stats::Second;
use std::fmt::Write;

const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 50.0;

const PHASE_FILL: [&str; 3] = ["#e8f3e8", "#fde3c7", "#e3edf9"];
const P50: &str = "#1f77b4";
const P99: &str = "#e6820e";
const MAX: &str = "#c62828";
const MIGRATION: &str = "#7b1fa2";

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1140px;color:#222;padding:0 12px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px}.sub{color:#555;margin:0 0 14px}\
table{border-collapse:collapse;margin:6px 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}tr.ratio td{font-weight:600;background:#fafafa}\
.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}.warn{color:#b26a00;font-weight:600}\
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}ul{margin:4px 0;padding-left:20px}\
svg{background:#fff;border:1px solid #ddd;display:block;margin:6px 0}svg text{font:12px system-ui,sans-serif;fill:#333}\
.kv td{text-align:left}.kv td:first-child{color:#555}";

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("evenkeel bench: {}", r.target);
    let _ = write!(out, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>", esc(&title));
    let _ = write!(out, "<h1>{}</h1><p class=\"sub\">{}</p>", esc(&title), esc(&subtitle(r)));
    verdicts(r, &mut out);
    phase_table(r, &mut out);
    out += "<h2>Latency per second (log scale)</h2>";
    out += &latency_chart(r);
    out += "<h2>Throughput per second</h2>";
    out += &throughput_chart(r);
    details(r, &mut out);
    anomalies(r, &mut out);
    out += "</body></html>\n";
    out
}

fn subtitle(r: &Report) -> String {
    let s = &r.settings;
    format!(
        "{} req/s requested over {} connections for {:.1} s · mix {} · {} over {} keys · {} B values{} · run {} · seed {}",
        s.rate,
        s.connections,
        r.timeline.phases[2].end_s,
        s.mix,
        s.dist,
        s.keys,
        s.value_size,
        if s.preload { " · preloaded" } else { "" },
        s.run_id,
        s.seed
    )
}

fn verdicts(r: &Report, out: &mut String) {
    let anomalies = r.correctness.total();
    let (cls, text) = if anomalies == 0 { ("ok", "no anomalies".to_string()) } else { ("bad", format!("{anomalies} anomalies")) };
    let _ = write!(out, "<p>Correctness: <span class=\"{cls}\">{text}</span>");
    let b = &r.budget;
    let (cls, text) = if b.within { ("ok", "within budget".to_string()) } else { ("bad", "over budget".to_string()) };
    let _ = write!(out, " · p99 during {} vs budget {} ({:.2} × baseline p99): <span class=\"{cls}\">{text}</span>", fmt_us(b.during_p99_us), fmt_us(b.limit_us as u64), b.ratio);
    let rate = &r.rate;
    let (cls, text) = match rate.shortfall_pct {
        Some(p) => ("warn", format!("{p:.1}% below requested")),
        None => ("ok", "on target".to_string()),
    };
    let _ = write!(out, " · achieved {:.0}/s of {:.0}/s: <span class=\"{cls}\">{text}</span></p>", rate.achieved_per_s, rate.requested_per_s);
}

fn phase_table(r: &Report, out: &mut String) {
    out.push_str("<table><tr><th>phase</th><th>window</th><th>requests</th><th>errors</th><th>timeouts</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th><th>ok/s</th></tr>");
    for p in &r.timeline.phases {
        let l = &p.latency;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.1}–{:.1} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
            p.name,
            p.start_s,
            p.end_s,
            p.requests,
            p.errors,
            p.timeouts,
            fmt_us(l.p50_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us),
            p.throughput
        );
    }
    let x = &r.ratios;
    let _ = write!(
        out,
        "<tr class=\"ratio\"><td>during / before</td><td></td><td></td><td></td><td></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        fmt_ratio(x.p50),
        fmt_ratio(x.p99),
        fmt_ratio(x.p999),
        fmt_ratio(x.max),
        fmt_ratio(x.throughput)
    );
}

/// Maps run seconds and values to chart pixels.
struct Frame {
    end_s: f64,
    y: Box<dyn Fn(f64) -> f64>,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.end_s).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }
}

fn svg_open(label: &str) -> String {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">", esc(label))
}

/// Shaded phase bands with their names, migration intervals, the x axis.
fn background(r: &Report, f: &Frame, out: &mut String) {
    let bottom = HEIGHT - BOTTOM;
    for (i, p) in r.timeline.phases.iter().enumerate() {
        let (x0, x1) = (f.x(p.start_s), f.x(p.end_s));
        if x1 > x0 {
            let _ = write!(out, "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>", x1 - x0, bottom - TOP, PHASE_FILL[i]);
            let _ = write!(out, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"600\">{}</text>", (x0 + x1) / 2.0, TOP - 8.0, p.name);
        }
    }
    for (i, m) in r.migrations.migrations.iter().enumerate() {
        let (x0, x1) = (f.x(m.start_s), f.x(m.end_s.unwrap_or(f.end_s)));
        let y = bottom - 10.0 - (i % 4) as f64 * 16.0;
        let name = format!("partition {} {}→{}", m.partition, m.source, m.target);
        let _ = write!(out, "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"7\" fill=\"{MIGRATION}\" fill-opacity=\"0.6\"><title>{} {}</title></rect>", (x1 - x0).max(2.0), esc(&name), esc(&m.state));
        if x1 - x0 > 8.0 * name.len() as f64 {
            let _ = write!(out, "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{MIGRATION}\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>", x0 + 4.0, y - 3.0, esc(&name));
        }
        if let Some(c) = m.cutover_s {
            let (xc, pause) = (f.x(c), m.cutover_pause_ms.map(|p| format!(", {p} ms pause")).unwrap_or_default());
            let _ = write!(out, "<line x1=\"{xc:.1}\" y1=\"{:.1}\" x2=\"{xc:.1}\" y2=\"{:.1}\" stroke=\"{MIGRATION}\" stroke-width=\"3\"><title>cutover{pause}</title></line>", y - 6.0, y + 9.0);
        }
    }
    let _ = write!(out, "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"#444\"/>", WIDTH - RIGHT);
    let step = nice_step(f.end_s);
    let mut t = 0.0;
    while t <= f.end_s + 1e-9 {
        let x = f.x(t);
        let _ = write!(out, "<line x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", bottom + 5.0, bottom + 18.0, trim_num(t));
        t += step;
    }
    let _ = write!(out, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">seconds since the load started</text>", WIDTH - RIGHT, HEIGHT - 6.0);
}

/// A tick spacing giving at most ~12 ticks over `span`.
fn nice_step(span: f64) -> f64 {
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0].into_iter().find(|s| span / s <= 12.0).unwrap_or(7200.0)
}

fn trim_num(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// A polyline through the seconds that had requests; gaps break the line.
fn series(f: &Frame, seconds: &[Second], value: impl Fn(&Second) -> Option<f64>, color: &str, width: f64, dash: &str) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for s in seconds {
        match value(s) {
            Some(v) => {
                let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, f.x(s.t as f64 + 0.5), (f.y)(v));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    format!("<path d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" stroke-linejoin=\"round\"{dash}/>")
}

/// The legend, in the bottom margin under the left end of the x axis.
fn legend(out: &mut String, items: &[(&str, &str, bool)]) {
    let mut x = LEFT;
    let y = HEIGHT - 10.0;
    for (label, color, dashed) in items {
        let dash = if *dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let _ = write!(out, "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2.5\"{dash}/><text x=\"{:.1}\" y=\"{y:.1}\">{}</text>", y - 4.0, x + 22.0, y - 4.0, x + 27.0, esc(label));
        x += 40.0 + 7.5 * label.chars().count() as f64;
    }
}

fn whole_seconds(r: &Report) -> usize {
    r.timeline.phases[2].end_s.floor() as usize
}

/// `100 µs`, `1 ms`, `10 s`: labels for powers of ten.
fn decade_label(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{} ms", us / 1_000),
        _ => format!("{} s", us / 1_000_000),
    }
}

/// A "nice" tick step (1, 2, 2.5 or 5 × 10ⁿ) giving about five ticks up to `max`.
fn nice_tick(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10.0 * mag)
}

fn latency_chart(r: &Report) -> String {
    let secs = &r.timeline.seconds;
    let with_data = || secs.iter().filter(|s| s.requests > 0);
    let lo = with_data().map(|s| s.p50_us.max(1)).min().unwrap_or(100);
    let hi = with_data().map(|s| s.max_us).max().unwrap_or(1000).max(r.budget.limit_us as u64).max(lo * 10);
    let (lo_exp, hi_exp) = ((lo as f64).log10().floor(), (hi as f64).log10().ceil());
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = move |v: f64| HEIGHT - BOTTOM - ((v.max(1.0).log10() - lo_exp) / (hi_exp - lo_exp)).clamp(0.0, 1.0) * plot_h;
    let f = Frame { end_s: r.timeline.phases[2].end_s.max(1.0), y: Box::new(y) };
    let mut out = svg_open("latency per second, log scale");
    background(r, &f, &mut out);
    let mut e = lo_exp;
    while e <= hi_exp {
        let v = 10f64.powf(e);
        let yy = (f.y)(v);
        let _ = write!(out, "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#000\" stroke-opacity=\"0.12\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", WIDTH - RIGHT, LEFT - 6.0, yy + 4.0, decade_label(v.round() as u64));
        e += 1.0;
    }
    // A last, partial second has too few requests to plot fairly.
    let secs = &secs[..whole_seconds(r).max(1).min(secs.len())];
    let has = |s: &Second| s.requests > 0;
    out += &series(&f, secs, |s| has(s).then_some(s.max_us as f64), MAX, 1.5, "");
    out += &series(&f, secs, |s| has(s).then_some(s.p99_us as f64), P99, 2.5, "");
    out += &series(&f, secs, |s| has(s).then_some(s.p50_us as f64), P50, 2.5, "");
    if r.budget.limit_us > 0.0 {
        let yy = (f.y)(r.budget.limit_us);
        let _ = write!(out, "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#111\" stroke-width=\"1.5\" stroke-dasharray=\"7 5\"/>", WIDTH - RIGHT);
        let _ = write!(out, "<text x=\"{:.1}\" y=\"{:.1}\" stroke=\"#fff\" stroke-width=\"4\" paint-order=\"stroke\">budget {:.2} × baseline p99 = {}</text>", LEFT + 6.0, yy - 5.0, r.budget.ratio, fmt_us(r.budget.limit_us as u64));
    }
    let mut items = vec![("p50", P50, false), ("p99", P99, false), ("max", MAX, false), ("budget", "#111", true)];
    if !r.migrations.migrations.is_empty() {
        items.push(("migration (tick: cutover)", MIGRATION, false));
    }
    legend(&mut out, &items);
    out += "</svg>";
    out
}

fn throughput_chart(r: &Report) -> String {
    let secs = &r.timeline.seconds;
    let top = secs.iter().map(|s| s.ok.max(s.failed)).max().unwrap_or(0).max(r.settings.rate) as f64 * 1.15;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = move |v: f64| HEIGHT - BOTTOM - (v / top).clamp(0.0, 1.0) * plot_h;
    let f = Frame { end_s: r.timeline.phases[2].end_s.max(1.0), y: Box::new(y) };
    let mut out = svg_open("throughput per second");
    background(r, &f, &mut out);
    let step = nice_tick(top);
    for v in (0..).map(|i| i as f64 * step).take_while(|&v| v <= top) {
        let yy = (f.y)(v);
        let _ = write!(out, "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#000\" stroke-opacity=\"0.12\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>", WIDTH - RIGHT, LEFT - 6.0, yy + 4.0, v);
    }
    let yr = (f.y)(r.settings.rate as f64);
    let _ = write!(out, "<line x1=\"{LEFT}\" y1=\"{yr:.1}\" x2=\"{:.1}\" y2=\"{yr:.1}\" stroke=\"#555\" stroke-width=\"1.5\" stroke-dasharray=\"7 5\"/>", WIDTH - RIGHT);
    // The last second may be partial; plot only whole seconds' throughput.
    let whole = whole_seconds(r).min(secs.len());
    out += &series(&f, &secs[..whole], |s| Some(s.ok as f64), P50, 2.5, "");
    out += &series(&f, &secs[..whole], |s| (s.failed > 0).then_some(s.failed as f64), MAX, 2.0, "");
    legend(&mut out, &[("ok/s", P50, false), ("failed/s", MAX, false), ("requested", "#555", true)]);
    out += "</svg>";
    out
}

fn details(r: &Report, out: &mut String) {
    out.push_str("<h2>Run</h2><table class=\"kv\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), v);
    };
    let rate = &r.rate;
    row("rate", format!("requested {:.0}/s · sent {:.0}/s · achieved {:.0}/s", rate.requested_per_s, rate.sent_per_s, rate.achieved_per_s));
    let lag = &r.timeline.send_lag;
    row("send lag", format!("p50 {} · p99 {} · max {} · {} sent &gt;1 ms late · {} behind schedule (window full) · {} reconnects", fmt_us(lag.p50_us), fmt_us(lag.p99_us), fmt_us(lag.max_us), lag.late_over_1ms, rate.behind_schedule, rate.reconnects));
    if let Some(machine) = &r.machine {
        let caution = machine.caution().map(|c| format!(" · {}", esc(c))).unwrap_or_default();
        row("machine", format!("{}{caution}", esc(&machine.describe())));
    }
    if let Some(host) = &r.host {
        row("host noise", esc(&host.describe()));
        if let Some(cpu) = host.describe_cpu() {
            row("machine CPU", esc(&cpu));
        }
        if let Some(freezes) = host.describe_freezes() {
            row("host freezes", esc(&freezes));
        }
    }
    if let Some(engine) = &r.engine {
        row("storage engines", esc(&engine.describe()));
    }
    if let Some(p) = r.preload_seconds {
        row("preload", format!("{} keys in {p:.2} s", r.settings.keys));
    }
    row("command", command_text(r));
    row("migrations", migrations_text(r));
    let e = &r.errors;
    let errors = if e.errors + e.timeouts == 0 {
        "none".to_string()
    } else {
        let list: String = e.by_message.iter().take(10).map(|(m, n)| format!("<li>{n} × {}</li>", esc(m))).collect();
        format!("{} error replies, {} without reply (indeterminate)<ul>{list}</ul>", e.errors, e.timeouts)
    };
    row("errors", errors);
    out.push_str("</table>");
    if let Some(c) = &r.command
        && !c.output_tail.is_empty()
    {
        let _ = write!(out, "<h2>Command output (tail)</h2><pre>{}</pre>", esc(&c.output_tail.join("\n")));
    }
}

fn command_text(r: &Report) -> String {
    match &r.command {
        None => "none: before / during / after are fixed slices of the run".to_string(),
        Some(c) => {
            let status = match (&c.problem, c.exit_code) {
                (Some(p), _) => esc(p),
                (None, Some(code)) => format!("exit code {code}"),
                (None, None) => "killed by a signal".to_string(),
            };
            format!("<code>{}</code>: {status}, ran {:.1}–{:.1} s", esc(&c.command), c.started_us as f64 / 1e6, c.ended_us as f64 / 1e6)
        }
    }
}

fn migrations_text(r: &Report) -> String {
    let m = &r.migrations;
    if let Some(note) = &m.note {
        return esc(note);
    }
    let pause = m.largest_cutover_pause_ms.map(|p| format!("{p} ms")).unwrap_or_else(|| "–".into());
    let rate = m.moved_mb_per_s.map(|v| format!("{v:.2} MB/s")).unwrap_or_else(|| "–".into());
    let cpu = m.cpu_text().map(|c| format!(" · {}", esc(&c))).unwrap_or_default();
    format!("{} during the run · {:.1} MB and {} keys copied · moved {rate} · largest cutover pause {pause}{cpu}", m.migrations.len(), m.bytes_copied as f64 / 1e6, m.keys_copied)
}

fn anomalies(r: &Report, out: &mut String) {
    let c = &r.correctness;
    out.push_str("<h2>Correctness</h2>");
    let _ = write!(out, "<p>{} reads checked ({} keys read back at the end) · {} writes acknowledged · {} indeterminate (errored or timed out: may or may not have happened)</p>", c.reads_checked, c.keys_read_back, c.writes_acked, c.writes_indeterminate);
    if let Some(e) = &c.read_back_error {
        let _ = write!(out, "<p class=\"bad\">The final read-back failed, so lost writes were not checked: {}</p>", esc(e));
    }
    out.push_str("<table><tr><th>anomaly</th><th>count</th></tr>");
    for a in &c.anomalies {
        let cls = if a.count == 0 { "ok" } else { "bad" };
        let _ = write!(out, "<tr><td>{}</td><td class=\"{cls}\">{}</td></tr>", a.kind.label(), a.count);
    }
    out.push_str("</table>");
    if !c.examples.is_empty() {
        out.push_str("<ul>");
        for a in &c.examples {
            let _ = write!(out, "<li><b>{}</b> {}: {}</li>", a.kind.label(), esc(&a.key), esc(&a.detail));
        }
        out.push_str("</ul>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn ticks_stay_few() {
        assert_eq!(nice_tick(11_500.0), 2_500.0);
        assert_eq!(nice_tick(2_300.0), 500.0);
        assert_eq!(nice_tick(100.0), 20.0);
        assert_eq!(nice_step(10.0), 1.0);
        assert_eq!(nice_step(60.0), 5.0);
        assert_eq!(nice_step(3600.0), 300.0);
    }
}
