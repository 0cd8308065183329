//! Markdown tables for bench/PLAYBACK.md from the JSON lines of `load` runs with each
//! `--player-kind`: RTMP and HTTP-FLV at each player count with their ratio (the n-th RTMP
//! run at a count pairs with the n-th HTTP-FLV run at that count, so interleaved rounds pair
//! up), then the LL-HLS runs.

use anyhow::Context as _;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `playback-report` arguments.
#[derive(clap::Args)]
pub(crate) struct PlaybackReportArgs {
    /// File with one JSON object per line (`load --json` output).
    results: PathBuf,
    /// Largest acceptable HTTP-FLV / RTMP ratio of server CPU per delivered Gbit/s.
    #[arg(long, default_value_t = 1.1)]
    target: f64,
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"))
}

fn kind(v: &Value) -> &str {
    // Runs from before --player-kind existed are RTMP runs.
    v.get("player_kind")
        .and_then(Value::as_str)
        .unwrap_or("rtmp")
}

fn players(v: &Value) -> u64 {
    v.get("players").and_then(Value::as_u64).unwrap_or(0)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Reads the results and returns the Markdown.
pub(crate) fn render(args: &PlaybackReportArgs) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let loads: Vec<Value> = rows
        .iter()
        .filter(|v| v["mode"] == "load")
        .cloned()
        .collect();
    let mut out = String::new();
    fan_out(&mut out, &loads, args.target);
    hls(&mut out, &loads);
    wire(&mut out, &rows);
    Ok(out)
}

fn fan_out(out: &mut String, rows: &[Value], target: f64) {
    let rows: Vec<&Value> = rows
        .iter()
        .filter(|v| matches!(kind(v), "rtmp" | "http-flv"))
        .collect();
    out.push_str("### RTMP and HTTP-FLV fan-out (1 publisher, ~600 kbps, viewers on loopback)\n\n");
    out.push_str("| # | viewers | kind | kept up | kbps/viewer (mean, min) | lag p50 / p95 / p99 ms | server CPU % | server CPU % per Gbit/s | wire Gbit/s | server RSS MiB | generator CPU % | load avg |\n");
    out.push_str("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (i, v) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({}%) | {}, {} | {} / {} / {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            players(v),
            kind(v),
            v["kept_up"],
            num(f(v, "kept_up_pct"), 1),
            num(f(v, "bitrate_kbps_mean"), 0),
            num(f(v, "bitrate_kbps_min"), 0),
            num(f(v, "lag_ms_p50"), 0),
            num(f(v, "lag_ms_p95"), 0),
            num(f(v, "lag_ms_p99"), 0),
            num(f(v, "server_cpu_pct"), 1),
            num(f(v, "server_cpu_pct_per_gbps"), 1),
            num(f(v, "wire_gbps"), 3),
            num(f(v, "server_rss_kib").map(|k| k / 1024.0), 1),
            num(f(v, "generator_cpu_pct"), 1),
            loadavg(v),
        );
    }
    let _ = write!(
        out,
        "\n### HTTP-FLV / RTMP at the same viewer count (target: server CPU per Gbit/s ≤ {target:.2}×)\n\n"
    );
    out.push_str("| viewers | pair (rows) | server CPU per Gbit/s | server CPU % | server RSS | lag p99 | within target |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---|\n");
    let mut counts: Vec<u64> = rows.iter().map(|v| players(v)).collect();
    counts.sort_unstable();
    counts.dedup();
    for n in counts {
        let idx = |k: &str| -> Vec<usize> {
            (0..rows.len())
                .filter(|&i| players(rows[i]) == n && kind(rows[i]) == k)
                .collect()
        };
        let mut ratios = Vec::new();
        for (&r, &h) in idx("rtmp").iter().zip(idx("http-flv").iter()) {
            let ratio = |key: &str| match (f(rows[h], key), f(rows[r], key)) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            let cpu = ratio("server_cpu_pct_per_gbps");
            if let Some(c) = cpu {
                ratios.push(c);
            }
            let _ = writeln!(
                out,
                "| {n} | {} / {} | {} | {} | {} | {} | {} |",
                h + 1,
                r + 1,
                num(cpu, 2),
                num(ratio("server_cpu_pct"), 2),
                num(ratio("server_rss_kib"), 2),
                num(ratio("lag_ms_p99"), 2),
                verdict(cpu, target),
            );
        }
        if ratios.len() > 1 {
            let m = mean(&ratios);
            let _ = writeln!(
                out,
                "| {n} | mean of {} pairs | {} | | | | {} |",
                ratios.len(),
                num(m, 2),
                verdict(m, target)
            );
        }
    }
}

fn loadavg(v: &Value) -> &str {
    v.get("loadavg").and_then(Value::as_str).unwrap_or("–")
}

fn verdict(ratio: Option<f64>, target: f64) -> &'static str {
    match ratio {
        Some(r) if r <= target => "yes",
        Some(_) => "**no**",
        None => "–",
    }
}

fn hls(out: &mut String, rows: &[Value]) {
    let rows: Vec<&Value> = rows.iter().filter(|v| kind(v) == "hls").collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("\n### Low-latency HLS (1 publisher, ~600 kbps; per viewer: blocking reload, then the part)\n\n");
    out.push_str("| viewers | kept up | kbps/viewer (mean, min) | server CPU % | server CPU % per Gbit/s | requests/s (playlists, parts) | blocking answers (late requests) | answer delay after ready p50 / p95 / p99 / max ms | non-2xx | timeouts | I/O errors | server RSS MiB | generator CPU % | load avg |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for v in rows {
        let _ = writeln!(
            out,
            "| {} | {} ({}%) | {}, {} | {} | {} | {} ({}, {}) | {} ({}) | {} / {} / {} / {} | {} | {} | {} | {} | {} | {} |",
            players(v),
            v["kept_up"],
            num(f(v, "kept_up_pct"), 1),
            num(f(v, "bitrate_kbps_mean"), 0),
            num(f(v, "bitrate_kbps_min"), 0),
            num(f(v, "server_cpu_pct"), 1),
            num(f(v, "server_cpu_pct_per_gbps"), 1),
            num(f(v, "requests_per_s"), 0),
            num(f(v, "playlist_requests_per_s"), 0),
            num(f(v, "part_requests_per_s"), 0),
            v["blocking_answers"],
            v["late_requests"],
            num(f(v, "blocking_delay_ms_p50"), 2),
            num(f(v, "blocking_delay_ms_p95"), 2),
            num(f(v, "blocking_delay_ms_p99"), 2),
            num(f(v, "blocking_delay_ms_max"), 2),
            v["http_errors"],
            v["timeouts"],
            v["io_errors"],
            num(f(v, "server_rss_kib").map(|k| k / 1024.0), 1),
            num(f(v, "generator_cpu_pct"), 1),
            loadavg(v),
        );
    }
}

/// The delays measured on the wire (`wire-delays`) from a capture of a second HLS run.
fn wire(out: &mut String, rows: &[Value]) {
    let rows: Vec<&Value> = rows.iter().filter(|v| v["mode"] == "hls-wire").collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("\n### LL-HLS blocking answers timed on the wire (tcpdump on loopback, a second run of the same load; the whole run, ramp included)\n\n");
    out.push_str("| blocking answers (late requests) | parts | answer delay after ready p50 / p95 / p99 / max ms |\n|---:|---:|---:|\n");
    for v in rows {
        let _ = writeln!(
            out,
            "| {} ({}) | {} | {} / {} / {} / {} |",
            v["blocking_answers"],
            v["late_requests"],
            v["parts_answered"],
            num(f(v, "blocking_delay_ms_p50"), 2),
            num(f(v, "blocking_delay_ms_p95"), 2),
            num(f(v, "blocking_delay_ms_p99"), 2),
            num(f(v, "blocking_delay_ms_max"), 2),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_ratios() {
        let line = |k: &str, n: u64, cpu: f64| {
            format!(
                r#"{{"mode":"load","player_kind":"{k}","players":{n},"kept_up":{n},"kept_up_pct":100.0,"server_cpu_pct_per_gbps":{cpu},"server_cpu_pct":{cpu}}}"#
            )
        };
        let text = [
            line("rtmp", 1000, 40.0),
            line("http-flv", 1000, 42.0),
            line("rtmp", 3000, 30.0),
            line("http-flv", 3000, 36.0),
            r#"{"mode":"load","player_kind":"hls","players":1000,"kept_up":999,"requests_per_s":9800.0,"blocking_answers":70000,"late_requests":3,"http_errors":0,"timeouts":0,"io_errors":0}"#.to_owned(),
            r#"{"mode":"hls-wire","blocking_answers":5,"late_requests":1,"parts_answered":2,"blocking_delay_ms_p99":3.5}"#.to_owned(),
        ]
        .join("\n");
        let path = std::env::temp_dir().join(format!("bench-pbr-{}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let md = render(&PlaybackReportArgs {
            results: path.clone(),
            target: 1.1,
        });
        std::fs::remove_file(&path).unwrap();
        let md = md.unwrap();
        assert!(md.contains("| 1000 | 2 / 1 | 1.05 |"), "{md}");
        assert!(md.contains("| 3000 | 4 / 3 | 1.20 |"), "{md}");
        assert!(md.contains("**no**"), "{md}");
        assert!(md.contains("| 1000 | 999 (–%) |"), "{md}");
        assert!(md.contains("9800 (–, –)"), "{md}");
        assert!(md.contains("| 5 (1) | 2 | – / – / 3.50 / – |"), "{md}");
    }
}
