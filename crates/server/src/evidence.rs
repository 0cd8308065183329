//! The kernel's evidence about a peer, read from `TCP_INFO`, turned into verdicts: pure
//! functions over [`TcpInfo`], so every rule is tested with scripted numbers, no socket.

use liveness::TcpInfo;
use rtmp_proto::session::CloseReason;
use std::time::Duration;

/// Where a connection core reads `TCP_INFO` from: the socket in production, a script in tests.
pub trait Kernel {
    /// The socket's current `TCP_INFO`.
    fn tcp_info(&self) -> std::io::Result<TcpInfo>;
}

impl<T: std::os::fd::AsFd> Kernel for T {
    fn tcp_info(&self) -> std::io::Result<TcpInfo> {
        liveness::tcp_info(self).map_err(std::io::Error::other)
    }
}

/// Longest gap between two looks at a viewer's `TCP_INFO`.
pub const PEER_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Shortest gap, so a check just short of the bound does not spin.
const PEER_CHECK_MIN: Duration = Duration::from_millis(50);

/// What a look at a viewer's socket says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCheck {
    /// Data in flight and no ACK for the whole `limit`: the host is gone.
    Unreachable,
    /// Look again after this long: exactly when the oldest unanswered data would reach the
    /// bound, and at least every [`PEER_CHECK_EVERY`].
    Again(Duration),
}

/// Data in flight with no ACK for `limit` (the `tcp_user_timeout` knob) means the peer's host
/// is gone: judged here, before the kernel's own TCP_USER_TIMEOUT fires (which counts from
/// the later start of retransmission).
pub fn peer_check(info: Option<&TcpInfo>, limit: Duration) -> PeerCheck {
    match info {
        Some(info) if info.unacked > 0 => {
            let silent = Duration::from_millis(u64::from(info.last_ack_recv_ms));
            if silent >= limit {
                PeerCheck::Unreachable
            } else {
                PeerCheck::Again((limit - silent).clamp(PEER_CHECK_MIN, PEER_CHECK_EVERY))
            }
        }
        _ => PeerCheck::Again(limit.min(PEER_CHECK_EVERY)),
    }
}

/// [`peer_check`] for a viewer that nothing else needs looked at often (an RTMP player: its
/// stalls are judged by the writer's progress): with nothing in flight, the next look is
/// `limit` away, not [`PEER_CHECK_EVERY`]. No verdict is later for it than the kernel's own
/// TCP_USER_TIMEOUT would be: data sent after this look is either answered, or seen in flight
/// by the next look, which then looks again exactly when the bound is reached (or finds it
/// passed). A player's task then wakes once per `limit` instead of once a second.
pub fn peer_check_sparse(info: Option<&TcpInfo>, limit: Duration) -> PeerCheck {
    match (info, peer_check(info, limit)) {
        (Some(info), PeerCheck::Again(_)) if info.unacked == 0 => PeerCheck::Again(limit),
        (_, verdict) => verdict,
    }
}

/// A viewer's progress as its peer's kernel reports it: the right edge of the peer's receive
/// window (bytes acknowledged plus the window it advertises), and when a look first saw it
/// there. The edge moves only when the peer's application reads; it stops the moment that
/// application stops, while its kernel goes on acknowledging until its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckProgress {
    /// `tcpi_bytes_acked + tcpi_snd_wnd` at the last look that saw it move (only the
    /// acknowledged bytes on kernels that do not report the window).
    pub edge: u64,
    /// When that look was.
    pub at: std::time::Instant,
}

/// Whether a viewer stopped reading: with data waiting for it, the right edge of its peer's
/// window has not moved for `stall` (a host that is alive but whose application does not read
/// only fills its buffer, then answers window probes). Measured from the peer's own window,
/// not from our writes, so neither our buffers nor its filling up add to the bound. Returns
/// the progress to remember and, if stalled, `true`.
pub fn reader_stalled(
    prev: Option<AckProgress>,
    info: &TcpInfo,
    pending: bool,
    now: std::time::Instant,
    stall: Duration,
) -> (Option<AckProgress>, bool) {
    let Some(acked) = info.bytes_acked else {
        return (prev, false);
    };
    let edge = acked + u64::from(info.snd_wnd.unwrap_or(0));
    match prev {
        Some(p) if p.edge == edge && pending => {
            (prev, now.saturating_duration_since(p.at) >= stall)
        }
        _ => (Some(AckProgress { edge, at: now }), false),
    }
}

/// A challenged publisher whose host sent nothing at all since the challenge `waited` ago —
/// no RTMP byte (`received`) and not even a TCP ACK of the ping — is gone. A frozen process on
/// a live host still ACKs, so it is not judged here (it loses the challenge at its deadline).
pub fn host_gone_since_challenge(info: &TcpInfo, received: bool, waited: Duration) -> bool {
    !received
        && info.unacked > 0
        && Duration::from_millis(u64::from(info.last_ack_recv_ms)) >= waited
}

/// The kernel says only ETIMEDOUT; its counters say which timer gave up: keepalive probes
/// went unanswered (idle socket), or retransmissions did (data in flight, TCP_USER_TIMEOUT).
pub fn refine_timeout(reason: CloseReason, info: Option<&TcpInfo>) -> CloseReason {
    if !matches!(
        reason,
        CloseReason::KeepaliveTimeout | CloseReason::UserTimeout
    ) {
        return reason;
    }
    match info {
        Some(info) if info.retransmits > 0 || info.unacked > 0 => CloseReason::UserTimeout,
        Some(info) if info.probes > 0 => CloseReason::KeepaliveTimeout,
        _ => reason,
    }
}

/// The close reason for an I/O error on the socket. `sent_after_rx`: our last write came
/// after the peer's last byte, so an ETIMEDOUT is the retransmission (user) timeout rather
/// than keepalive.
pub fn io_reason(e: &std::io::Error, sent_after_rx: bool) -> CloseReason {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            CloseReason::PeerReset
        }
        ErrorKind::TimedOut if sent_after_rx => CloseReason::UserTimeout,
        ErrorKind::TimedOut => CloseReason::KeepaliveTimeout,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => CloseReason::PeerUnreachable,
        _ => CloseReason::PeerReset,
    }
}

/// What a connection's `close` log line says, whatever its protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseLine<'a> {
    /// The last role held ("publisher", "player", or "idle").
    pub(crate) role: &'static str,
    /// `app/name` published or played.
    pub(crate) stream: Option<&'a str>,
    /// How long the peer had been silent.
    pub(crate) silent: Duration,
}

/// Logs the end of `control`'s connection: its one close reason with the peer's silence and
/// the kernel's evidence (how long since the peer ACKed anything, what is still in flight).
pub(crate) fn log_close(
    control: &crate::control::ConnControl,
    line: CloseLine<'_>,
    reason: &CloseReason,
    info: Option<&TcpInfo>,
) {
    use std::sync::atomic::Ordering;
    let (last_ack_ms, unacked) = info.map_or((-1, -1), |i| {
        (i64::from(i.last_ack_recv_ms), i64::from(i.unacked))
    });
    tracing::info!(
        conn = control.id,
        peer = %control.peer,
        protocol = control.protocol().label(),
        role = line.role,
        stream = line.stream.unwrap_or("-"),
        reason = %reason,
        silent_ms = line.silent.as_millis(),
        last_ack_ms,
        unacked,
        bytes_in = control.bytes_in.load(Ordering::Relaxed),
        bytes_out = control.bytes_out.load(Ordering::Relaxed),
        age_ms = control.started.elapsed().as_millis(),
        "close"
    );
}

/// A scripted [`Kernel`] for tests: answers with whatever `TCP_INFO` was last set.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct ScriptedKernel(pub(crate) std::cell::RefCell<Option<TcpInfo>>);

#[cfg(test)]
impl ScriptedKernel {
    /// Data in flight (`unacked` segments) and the last ACK `last_ack_ms` ago.
    pub(crate) fn set(&self, unacked: u32, last_ack_ms: u32) {
        *self.0.borrow_mut() = Some(info(unacked, last_ack_ms));
    }
}

#[cfg(test)]
impl Kernel for ScriptedKernel {
    fn tcp_info(&self) -> std::io::Result<TcpInfo> {
        self.0
            .borrow()
            .clone()
            .ok_or_else(|| std::io::Error::other("no TCP_INFO scripted"))
    }
}

/// A `TCP_INFO` with just the fields the verdicts read.
#[cfg(test)]
pub(crate) fn info(unacked: u32, last_ack_ms: u32) -> TcpInfo {
    TcpInfo {
        state: liveness::TcpState::Established,
        rtt_us: 1000,
        rttvar_us: 500,
        rto_us: 200_000,
        unacked,
        retransmits: 0,
        backoff: 0,
        probes: 0,
        total_retrans: 0,
        last_data_sent_ms: 0,
        last_data_recv_ms: last_ack_ms,
        last_ack_recv_ms: last_ack_ms,
        notsent_bytes: None,
        bytes_acked: None,
        bytes_received: None,
        snd_wnd: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn unreachable_only_with_data_in_flight_and_no_ack_for_the_limit() {
        assert_eq!(
            peer_check(Some(&info(0, 60_000)), LIMIT),
            PeerCheck::Again(PEER_CHECK_EVERY),
            "an idle socket is keepalive's business"
        );
        assert_eq!(
            peer_check(Some(&info(3, 9_700)), LIMIT),
            PeerCheck::Again(Duration::from_millis(300)),
            "looks again exactly when the bound is reached"
        );
        assert_eq!(
            peer_check(Some(&info(3, 9_990)), LIMIT),
            PeerCheck::Again(PEER_CHECK_MIN)
        );
        assert_eq!(
            peer_check(Some(&info(3, 10_000)), LIMIT),
            PeerCheck::Unreachable
        );
        assert_eq!(peer_check(None, LIMIT), PeerCheck::Again(PEER_CHECK_EVERY));
    }

    #[test]
    fn a_sparse_check_looks_again_after_the_limit_only_when_nothing_is_in_flight() {
        assert_eq!(
            peer_check_sparse(Some(&info(0, 200)), LIMIT),
            PeerCheck::Again(LIMIT)
        );
        for (unacked, ms) in [(3, 9_700), (3, 2_000), (3, 10_000)] {
            assert_eq!(
                peer_check_sparse(Some(&info(unacked, ms)), LIMIT),
                peer_check(Some(&info(unacked, ms)), LIMIT),
                "data in flight is judged as precisely as ever"
            );
        }
        assert_eq!(
            peer_check_sparse(None, LIMIT),
            PeerCheck::Again(PEER_CHECK_EVERY)
        );
    }

    #[test]
    fn a_reader_that_acknowledges_nothing_new_is_stalled() {
        let t0 = std::time::Instant::now();
        let stall = Duration::from_secs(15);
        let mut i = info(2, 10);
        i.bytes_acked = Some(1000);
        let (p, stalled) = reader_stalled(None, &i, true, t0, stall);
        assert!(!stalled);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(reader_stalled(p, &i, true, at(14), stall), (p, false));
        assert_eq!(reader_stalled(p, &i, true, at(15), stall), (p, true));
        assert!(
            !reader_stalled(p, &i, false, at(60), stall).1,
            "nothing waits for it"
        );
        i.bytes_acked = Some(2000);
        let (moved, stalled) = reader_stalled(p, &i, true, at(15), stall);
        assert!(!stalled && moved.is_some_and(|m| m.at == at(15)));
        // A frozen reader's kernel still acknowledges (its window shrinks by as much): the
        // edge does not move, so it stalls from the freeze, not from its buffer filling up.
        i.snd_wnd = Some(64_000);
        let (p, _) = reader_stalled(None, &i, true, t0, stall);
        i.bytes_acked = Some(50_000);
        i.snd_wnd = Some(16_000);
        assert_eq!(reader_stalled(p, &i, true, at(15), stall), (p, true));
    }

    #[test]
    fn challenged_host_gone_only_when_nothing_came_back() {
        let waited = Duration::from_millis(300);
        assert!(host_gone_since_challenge(&info(1, 400), false, waited));
        assert!(
            !host_gone_since_challenge(&info(1, 100), false, waited),
            "ACKed the ping"
        );
        assert!(
            !host_gone_since_challenge(&info(1, 400), true, waited),
            "sent a byte"
        );
        assert!(
            !host_gone_since_challenge(&info(0, 400), false, waited),
            "ping not sent yet"
        );
    }

    #[test]
    fn etimedout_is_split_by_the_kernel_counters() {
        let mut busy = info(2, 10_000);
        busy.retransmits = 5;
        assert_eq!(
            refine_timeout(CloseReason::KeepaliveTimeout, Some(&busy)),
            CloseReason::UserTimeout
        );
        let mut idle = info(0, 10_000);
        idle.probes = 3;
        assert_eq!(
            refine_timeout(CloseReason::UserTimeout, Some(&idle)),
            CloseReason::KeepaliveTimeout
        );
        assert_eq!(
            refine_timeout(CloseReason::PeerClosed, Some(&busy)),
            CloseReason::PeerClosed
        );
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(io_reason(&timed_out, true), CloseReason::UserTimeout);
        assert_eq!(io_reason(&timed_out, false), CloseReason::KeepaliveTimeout);
    }
}
