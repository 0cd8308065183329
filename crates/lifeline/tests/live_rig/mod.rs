//! What the loopback abuse and limits tests (`abuse.rs`, `limits.rs`) share: a server with a
//! real ffmpeg publish + play of [`STREAM`] beside the test, run one test at a time, and the
//! metrics it reports.

// Each test binary uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use testkit::abuse::{LiveCheck, raise_nofile_limit};
use testkit::client::RtmpClient;
use testkit::http::http;
use testkit::rtmp::{Lifeline, require_tool};

/// The live stream that must stay real time beside each test.
pub(crate) const STREAM: &str = "live/rt";

pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lifeline"))
}

/// One test at a time: each measures a real-time stream on shared cores.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A server with `config` and a real ffmpeg publish + play of [`STREAM`] going on.
pub(crate) fn start(
    test: &str,
    config: &str,
) -> Option<(MutexGuard<'static, ()>, Lifeline, LiveCheck)> {
    if !require_tool(test, "ffmpeg") {
        return None;
    }
    let guard = serial();
    raise_nofile_limit();
    let mut server = Lifeline::start(bin(), config);
    let live = LiveCheck::start(&mut server, STREAM, 120);
    Some((guard, server, live))
}

pub(crate) fn connect(addr: SocketAddr) -> RtmpClient {
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    RtmpClient::connect(tcp, "live", Duration::from_secs(5)).unwrap()
}

pub(crate) fn metric(server: &Lifeline, name_and_labels: &str) -> u64 {
    let addr = server.http_addr.expect("admin HTTP enabled");
    let body = http(addr, "GET", "/metrics", None).body;
    body.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
