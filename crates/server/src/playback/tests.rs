//! The playback connection core on an explicit clock: no socket, no runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::conn::{HttpConn, Phase};
use crate::config::Config;
use crate::control::ConnControl;
use crate::evidence::ScriptedKernel;
use crate::shared::Shared;
use bytes::Bytes;
use rtmp_proto::session::{CloseReason, Media, MediaKind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn conn(shared: &Arc<Shared>, t0: Instant) -> HttpConn {
    let control = Arc::new(ConnControl::new(
        7,
        "192.0.2.7:5000".parse().unwrap(),
        CancellationToken::new(),
    ));
    HttpConn::new(shared.clone(), control, t0)
}

fn send(c: &mut HttpConn, now: Instant, bytes: &[u8]) {
    c.inbuf.extend_from_slice(bytes);
    c.handle_input(now, bytes.len()).unwrap();
}

/// What the core would write now, as if the socket took all of it.
fn written(c: &mut HttpConn, now: Instant) -> String {
    if !c.wants_write() {
        return String::new();
    }
    let bytes: Vec<u8> = c.out.slices().iter().flat_map(|s| s.to_vec()).collect();
    c.wrote(bytes.len());
    c.write_done(now, !bytes.is_empty());
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn the_first_head_must_come_within_the_handshake_timeout() {
    let shared = Shared::new(Arc::new(Config::default()));
    let t0 = Instant::now();
    let mut c = conn(&shared, t0);
    send(&mut c, t0, b"GET /live/a.flv HTTP/1.1\r\n");
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(
        deadline,
        t0 + Duration::from_secs(10),
        "dribbling does not extend it"
    );
    let k = ScriptedKernel::default();
    assert_eq!(
        c.handle_timeout(deadline, &k),
        Err(CloseReason::HandshakeTimeout)
    );
}

#[test]
fn a_keep_alive_connection_idle_between_requests_closes_at_the_idle_timeout() {
    let shared = Shared::new(Arc::new(Config::default()));
    let t0 = Instant::now();
    let mut c = conn(&shared, t0);
    send(
        &mut c,
        t0,
        b"GET /live/cam/s/abc/media.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let answer = written(&mut c, t0);
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    assert!(answer.contains("Connection: keep-alive"), "{answer}");
    assert!(c.poll_close().is_none(), "kept open");
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // A second request on the same connection is served, and re-arms the idle deadline.
    send(&mut c, t1, b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(written(&mut c, t1).starts_with("HTTP/1.1 404"));
    assert!(c.poll_close().is_some(), "closed after Connection: close");

    let mut idle = conn(&shared, t0);
    send(
        &mut idle,
        t0,
        b"GET /live/cam/s/abc/media.m3u8 HTTP/1.1\r\n\r\n",
    );
    written(&mut idle, t0);
    let at = idle.poll_timeout().unwrap();
    assert_eq!(at, t0 + Duration::from_secs(10));
    let k = ScriptedKernel::default();
    assert_eq!(idle.handle_timeout(at, &k), Err(CloseReason::IdleTimeout));
}

#[test]
fn an_http_flv_body_is_one_chunk_per_batch_of_shared_tags() {
    let mut config = Config::default();
    config.play.merge_window = Some(Duration::ZERO);
    let shared = Shared::new(Arc::new(config));
    let t0 = Instant::now();
    let publisher = Arc::new(ConnControl::new(
        1,
        "192.0.2.1:1".parse().unwrap(),
        CancellationToken::new(),
    ));
    let crate::registry::PublishOutcome::Granted(guard) =
        shared.registry.publish("live", "cam", &publisher, t0)
    else {
        panic!("not granted");
    };
    guard.publish(Media {
        kind: MediaKind::Video,
        timestamp: 0,
        payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3]),
    });
    let mut c = conn(&shared, t0);
    send(&mut c, t0, b"GET /live/cam.flv HTTP/1.1\r\n\r\n");
    let out = written(&mut c, t0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: video/x-flv") && head.contains("Transfer-Encoding: chunked")
    );
    // One chunk: FLV header (13 bytes) and the cached sequence header's tag (11 + 8 + 4).
    assert!(body.starts_with("24\r\nFLV\x01\x05"), "{body:?}");
    assert!(body.ends_with("\r\n"));
    // A live frame arrives as the next chunk, its tag shared with every other viewer.
    guard.publish(Media {
        kind: MediaKind::Video,
        timestamp: 40,
        payload: Bytes::from_static(&[0x27, 1, 0, 0, 0, 9]),
    });
    let Phase::Live(live) = &mut c.phase else {
        panic!("not live")
    };
    let ev = futures_poll(live.viewer.recv());
    c.on_stream_event(t0, ev).unwrap();
    let chunk = written(&mut c, t0);
    assert_eq!(chunk.len(), "15\r\n".len() + 11 + 6 + 4 + 2, "{chunk:?}");
    assert!(chunk.starts_with("15\r\n\x09"));
}

#[test]
fn a_viewer_before_the_publisher_waits_then_gets_404() {
    let shared = Shared::new(Arc::new(Config::default()));
    let t0 = Instant::now();
    let mut c = conn(&shared, t0);
    send(&mut c, t0, b"GET /live/nobody.flv HTTP/1.1\r\n\r\n");
    assert_eq!(
        written(&mut c, t0),
        "",
        "nothing until a publisher or the deadline"
    );
    let at = c.poll_timeout().unwrap();
    assert_eq!(
        at,
        t0 + Duration::from_secs(1),
        "peer checks go on meanwhile"
    );
    let k = ScriptedKernel::default();
    k.set(0, 0);
    let mut now = at;
    while now < t0 + Duration::from_secs(5) {
        c.handle_timeout(now, &k).unwrap();
        now = c.poll_timeout().unwrap();
    }
    c.handle_timeout(now, &k).unwrap();
    let answer = written(&mut c, now);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.contains("no publisher for live/nobody within 5s"),
        "{answer}"
    );
    assert!(c.poll_close().is_some());
}

fn futures_poll<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("nothing ready"),
    }
}
