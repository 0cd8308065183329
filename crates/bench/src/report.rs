//! Markdown tables from the JSON lines `load` and `idle` print, so `bench/compare.sh` needs
//! no tool beyond this binary to write bench/RESULTS.md.

use anyhow::Context as _;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `report` arguments.
#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// File with one JSON object per line.
    results: PathBuf,
    /// The server whose figures are the numerator of the ratios.
    #[arg(long, default_value = "lifeline")]
    ours: String,
    /// The servers compared against (repeat the flag for several).
    #[arg(long, default_value = "nginx-rtmp")]
    theirs: Vec<String>,
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    }
}

/// The stream a load replayed, as `compare.sh` labels it ("30 fps" when unlabelled).
fn stream_of(v: &Value) -> &str {
    v.get("stream").and_then(Value::as_str).unwrap_or("30 fps")
}

fn load_key(v: &Value) -> (&str, u64, u64) {
    let g = |k| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    (stream_of(v), g("publishers"), g("players_per_stream"))
}

/// A load's name in the tables: "1 pub × 2000, 30 fps".
fn load_name(v: &Value) -> String {
    let (stream, p, n) = load_key(v);
    format!("{p} pub × {n}, {stream}")
}

/// Reads the results and returns the Markdown.
pub(crate) fn render(args: &ReportArgs) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let server = |v: &Value| {
        v.get("server")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let loads: Vec<&Value> = rows.iter().filter(|v| v["mode"] == "load").collect();
    let idles: Vec<&Value> = rows.iter().filter(|v| v["mode"] == "idle").collect();
    let mut out = String::new();

    out.push_str("### Live loads (~600 kbps streams, players on loopback)\n\n");
    out.push_str("| load | server | players | kept up | kbps/player (mean, min) | lag p50 / p95 / p99 / max ms | server CPU % | server CPU % per Gbit/s | server RSS MiB | generator CPU % | load avg |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for v in &loads {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({}%) | {}, {} | {} / {} / {} / {} | {} | {} | {} | {} | {} |",
            load_name(v),
            server(v),
            v["players"],
            v["kept_up"],
            num(f(v, "kept_up_pct"), 1),
            num(f(v, "bitrate_kbps_mean"), 0),
            num(f(v, "bitrate_kbps_min"), 0),
            num(f(v, "lag_ms_p50"), 0),
            num(f(v, "lag_ms_p95"), 0),
            num(f(v, "lag_ms_p99"), 0),
            num(f(v, "lag_ms_max"), 0),
            num(f(v, "server_cpu_pct"), 1),
            num(f(v, "server_cpu_pct_per_gbps"), 1),
            num(f(v, "server_rss_kib").map(|k| k / 1024.0), 1),
            num(f(v, "generator_cpu_pct"), 1),
            num(f(v, "load_avg_1m"), 2),
        );
    }

    for theirs in &args.theirs {
        ratios(&mut out, &loads, &args.ours, theirs);
    }

    out.push_str(
        "\n### Largest player count sustained (1 publisher, ≥ 99 % of players kept up)\n\n",
    );
    out.push_str("| stream | server | players | the next step | server CPU % | generator CPU % |\n|---|---|---:|---|---:|---:|\n");
    let mut streams: Vec<&str> = Vec::new();
    for v in &loads {
        if !streams.contains(&stream_of(v)) {
            streams.push(stream_of(v));
        }
    }
    for stream in streams {
        let one = |name: &str| -> Vec<&Value> {
            loads
                .iter()
                .copied()
                .filter(|v| server(v) == name && stream_of(v) == stream && load_key(v).1 == 1)
                .collect()
        };
        let best = |name: &str| {
            one(name)
                .into_iter()
                .filter(|v| f(v, "kept_up_pct").is_some_and(|k| k >= 99.0))
                .max_by_key(|v| load_key(v).2)
        };
        for name in std::iter::once(&args.ours).chain(&args.theirs) {
            let Some(v) = best(name) else { continue };
            // The step above the best: where it fell below 99 %, or that no step was run.
            let next = one(name)
                .into_iter()
                .filter(|w| load_key(w).2 > load_key(v).2)
                .min_by_key(|w| load_key(w).2)
                .map_or_else(
                    || "not run (the search's limit)".to_owned(),
                    |w| format!("{}: {}% kept up", w["players"], num(f(w, "kept_up_pct"), 1)),
                );
            let _ = writeln!(
                out,
                "| {stream} | {name} | {} | {next} | {} | {} |",
                v["players"],
                num(f(v, "server_cpu_pct"), 1),
                num(f(v, "generator_cpu_pct"), 1)
            );
        }
        let players = |name: &str| best(name).and_then(|v| f(v, "players"));
        for theirs in &args.theirs {
            if let (Some(a), Some(b)) = (players(&args.ours), players(theirs)) {
                let _ = writeln!(
                    out,
                    "| {stream} | ratio {} / {theirs} | {:.2} | | | |",
                    args.ours,
                    a / b
                );
            }
        }
    }

    out.push_str("\n### Idle connections (handshake + connect, no stream)\n\n");
    out.push_str("| server | open | RSS KiB per connection | server CPU % while idle | generator CPU % | load avg |\n|---|---:|---:|---:|---:|---:|\n");
    for v in &idles {
        let _ = writeln!(
            out,
            "| {} | {} / {} | {} | {} | {} | {} |",
            server(v),
            v["open_at_end"],
            v["connections"],
            num(f(v, "server_rss_kib_per_conn"), 2),
            num(f(v, "server_cpu_pct"), 2),
            num(f(v, "generator_cpu_pct"), 2),
            num(f(v, "load_avg_1m"), 2),
        );
    }
    let pick = |name: &str| idles.iter().find(|v| server(v) == name);
    for theirs in &args.theirs {
        if let (Some(a), Some(b)) = (pick(&args.ours), pick(theirs)) {
            let _ = writeln!(
                out,
                "\nRatio {} / {theirs}: RSS per idle connection {}, idle CPU {}.",
                args.ours,
                ratio(
                    f(a, "server_rss_kib_per_conn"),
                    f(b, "server_rss_kib_per_conn")
                ),
                ratio(f(a, "server_cpu_pct"), f(b, "server_cpu_pct")),
            );
        }
    }
    Ok(out)
}

/// The ratio table of `ours` against `theirs`, at every load both ran.
fn ratios(out: &mut String, loads: &[&Value], ours: &str, theirs: &str) {
    let server = |v: &Value| {
        v.get("server")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let _ = write!(
        out,
        "\n### Ratios {ours} / {theirs} at the same load (lower is better for CPU, RSS and lag)\n\n"
    );
    out.push_str("| load | kept up | server CPU per Gbit/s | server RSS | lag p95 | lag p99 | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for a in loads.iter().filter(|v| server(v) == ours) {
        let Some(b) = loads
            .iter()
            .find(|v| server(v) == theirs && load_key(v) == load_key(a))
        else {
            continue;
        };
        let r = |k: &str| ratio(f(a, k), f(b, k));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            load_name(a),
            r("kept_up_pct"),
            r("server_cpu_pct_per_gbps"),
            r("server_rss_kib"),
            r("lag_ms_p95"),
            r("lag_ms_p99"),
            r("generator_cpu_pct"),
        );
    }
}
