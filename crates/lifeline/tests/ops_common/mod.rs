//! Helpers shared by the `ops_*` end-to-end tests of the `lifeline` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use testkit::NetNs;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

/// Runs `lifeline args…` inside `ns`.
pub(crate) fn lifeline(ns: &NetNs, args: &[&str]) -> Output {
    ns.command(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run lifeline")
}

/// Runs `lifeline args… --json` inside `ns`, asserts success and parses stdout.
pub(crate) fn lifeline_json(ns: &NetNs, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = lifeline(ns, &a);
    assert!(
        out.status.success(),
        "lifeline {a:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// A connected pair inside `ns`: (listener, client, accepted server side).
pub(crate) fn pair(ns: &NetNs) -> (TcpListener, TcpStream, TcpStream) {
    ns.in_ns(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (l, c, s)
    })
}

/// Another connection to an existing listener, made inside `ns`.
pub(crate) fn connect(ns: &NetNs, l: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = l.local_addr().unwrap();
    let c = ns.in_ns(move || TcpStream::connect(addr).unwrap());
    let (s, _) = l.accept().unwrap();
    (c, s)
}
