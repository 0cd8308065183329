//! The blocking answers' delays measured on the wire instead of in the generator: from a
//! packet capture of the playback port (`tcpdump -i lo -s 200 -w F 'tcp port P'`), each
//! blocking reload `GET …_HLS_msn=M&_HLS_part=I` and the status line answering it on the same
//! connection, with the kernel's timestamps. The generator reads a thousand answers one after
//! the other on one thread, which adds its own time to the later ones; the capture does not.
//! Only headers are needed: a snap length of 200 bytes keeps the file small.

use super::delay::{Sample, Summary, summarize};
use anyhow::{Context as _, bail};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `wire-delays` arguments.
#[derive(clap::Args)]
pub(crate) struct WireArgs {
    /// A classic pcap file (tcpdump -w).
    pcap: PathBuf,
    /// The server's playback port.
    #[arg(long)]
    port: u16,
    /// Name of the server under test, copied into the output.
    #[arg(long, default_value = "")]
    server: String,
}

/// One TCP segment with payload: (time in s, source port, destination port, payload head).
type Segment<'a> = (f64, u16, u16, &'a [u8]);

/// The TCP segments of a pcap file, in capture order.
fn segments(file: &[u8]) -> anyhow::Result<Vec<Segment<'_>>> {
    let header = file.get(..24).context("not a pcap file")?;
    let magic = [header[0], header[1], header[2], header[3]];
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => bail!("not a classic pcap file (pcapng is not read: use tcpdump -w)"),
    };
    let u32_at = |b: &[u8], i: usize| -> u32 {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    // Link layer header length: Ethernet (tcpdump's loopback), Linux cooked v1 and v2.
    let link = match u32_at(header, 20) {
        1 => 14,
        113 => 16,
        276 => 20,
        other => bail!("link type {other} is not read"),
    };
    let mut out = Vec::new();
    let mut pos = 24;
    while let Some(rec) = file.get(pos..pos + 16) {
        let secs = f64::from(u32_at(rec, 0));
        let frac = f64::from(u32_at(rec, 4)) / if nanos { 1e9 } else { 1e6 };
        let incl = u32_at(rec, 8) as usize;
        let Some(frame) = file.get(pos + 16..pos + 16 + incl) else {
            break;
        };
        pos += 16 + incl;
        if let Some((sport, dport, payload)) = frame.get(link..).and_then(tcp_payload)
            && !payload.is_empty()
        {
            out.push((secs + frac, sport, dport, payload));
        }
    }
    Ok(out)
}

/// Ports and payload of an IPv4 or IPv6 TCP packet.
fn tcp_payload(ip: &[u8]) -> Option<(u16, u16, &[u8])> {
    let (proto, tcp) = match ip.first()? >> 4 {
        4 => (*ip.get(9)?, ip.get(usize::from(ip[0] & 0x0f) * 4..)?),
        6 => (*ip.get(6)?, ip.get(40..)?),
        _ => return None,
    };
    if proto != 6 {
        return None;
    }
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    Some((sport, dport, tcp.get(offset..)?))
}

/// `M`, `I` from a request line `GET …_HLS_msn=M&_HLS_part=I…`.
fn blocking_part(payload: &[u8]) -> Option<(u64, u64)> {
    let line = payload.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let path = line.strip_prefix("GET ")?.split(' ').next()?;
    let query = path.split_once('?')?.1;
    let (mut msn, mut part) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("_HLS_msn", v)) => msn = v.parse().ok(),
            Some(("_HLS_part", v)) => part = v.parse().ok(),
            _ => {}
        }
    }
    Some((msn?, part?))
}

/// The blocking answers in a capture, as samples on a clock starting at `base`.
fn samples(segs: &[Segment<'_>], port: u16, base: Instant) -> Vec<Sample> {
    let first = segs.first().map_or(0.0, |s| s.0);
    let at = |t: f64| base + Duration::from_secs_f64((t - first).max(0.0));
    let mut pending: HashMap<u16, ((u64, u64), f64)> = HashMap::new();
    let mut out = Vec::new();
    for &(t, sport, dport, payload) in segs {
        if dport == port && payload.starts_with(b"GET ") {
            match blocking_part(payload) {
                Some(part) => pending.insert(sport, (part, t)),
                None => pending.remove(&sport),
            };
        } else if sport == port
            && payload.starts_with(b"HTTP/1.1 ")
            && let Some((part, sent)) = pending.remove(&dport)
            && payload.starts_with(b"HTTP/1.1 200")
        {
            out.push(Sample {
                part,
                sent: at(sent),
                answered: at(t),
            });
        }
    }
    out
}

/// Reads the capture; one JSON object with the delays of every blocking answer in it.
pub(crate) fn render(args: &WireArgs) -> anyhow::Result<String> {
    let file = std::fs::read(&args.pcap)
        .with_context(|| format!("cannot read {}", args.pcap.display()))?;
    let segs = segments(&file)?;
    let base = Instant::now();
    let samples = samples(&segs, args.port, base);
    let span = samples.iter().map(|s| s.answered).max().unwrap_or(base);
    let Summary {
        blocked,
        late,
        parts,
        delay_ms,
    } = summarize(&samples, base, span);
    let d = |i: usize| delay_ms.map(|q| q[i]);
    Ok(serde_json::json!({
        "mode": "hls-wire",
        "server": args.server,
        "segments": segs.len(),
        "blocking_answers": blocked,
        "late_requests": late,
        "parts_answered": parts,
        "blocking_delay_ms_p50": d(0),
        "blocking_delay_ms_p95": d(1),
        "blocking_delay_ms_p99": d(2),
        "blocking_delay_ms_max": d(3),
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_pair_with_their_answers() {
        assert_eq!(
            blocking_part(b"GET /a/b/s/1/media.m3u8?_HLS_msn=12&_HLS_part=3 HTTP/1.1\r\nHost"),
            Some((12, 3))
        );
        assert_eq!(
            blocking_part(b"GET /a/b/s/1/part-1.2.m4s HTTP/1.1\r\n"),
            None
        );
        let get = b"GET /m.m3u8?_HLS_msn=1&_HLS_part=0 HTTP/1.1\r\n";
        let segs: Vec<Segment<'_>> = vec![
            (10.000, 5000, 80, get),
            (10.001, 5001, 80, get),
            (10.100, 80, 5001, b"HTTP/1.1 200 OK\r\n"),
            (10.104, 80, 5000, b"HTTP/1.1 200 OK\r\n"),
            (10.105, 5000, 80, b"GET /part-1.0.m4s HTTP/1.1\r\n"),
            (10.106, 80, 5000, b"HTTP/1.1 200 OK\r\n"),
        ];
        let base = Instant::now();
        let s = samples(&segs, 80, base);
        assert_eq!(s.len(), 2);
        let sum = summarize(&s, base, base + Duration::from_secs(1));
        assert_eq!((sum.blocked, sum.late, sum.parts), (2, 0, 1));
        let max = sum.delay_ms.map_or(0.0, |q| q[3]);
        assert!((max - 4.0).abs() < 0.01, "{max}");
    }

    #[test]
    fn ipv4_tcp_payload() {
        let mut pkt = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6];
        pkt.resize(20, 0);
        pkt.extend_from_slice(&[0x13, 0x88, 0x00, 0x50]);
        pkt.resize(40, 0);
        // TCP data offset: 5 words.
        pkt[20 + 12] = 0x50;
        pkt.extend_from_slice(b"GET");
        assert_eq!(tcp_payload(&pkt), Some((5000, 80, &b"GET"[..])));
    }
}
