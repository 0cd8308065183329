//! `TCP_INFO`: the kernel's per-socket evidence of a live (or dead) peer.

use crate::LivenessError;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd};

/// TCP state as the kernel numbers it (`include/net/tcp_states.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TcpState {
    /// Data can flow both ways.
    Established,
    /// Connecting.
    SynSent,
    /// Handshake half done (server side).
    SynRecv,
    /// We closed, waiting for the peer's ACK.
    FinWait1,
    /// We closed, peer acknowledged; waiting for its FIN.
    FinWait2,
    /// Both closed, lingering.
    TimeWait,
    /// Closed.
    Close,
    /// The peer closed (sent FIN) but the application has not closed yet.
    CloseWait,
    /// Both closed, waiting for the last ACK.
    LastAck,
    /// Listening socket.
    Listen,
    /// Simultaneous close.
    Closing,
    /// A state number this crate does not know.
    Unknown(u8),
}

impl TcpState {
    /// Maps the kernel's number.
    pub fn from_kernel(n: u8) -> Self {
        match n {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            n => Self::Unknown(n),
        }
    }

    /// The kernel's number (inverse of [`TcpState::from_kernel`]).
    pub fn to_kernel(self) -> u8 {
        match self {
            Self::Established => 1,
            Self::SynSent => 2,
            Self::SynRecv => 3,
            Self::FinWait1 => 4,
            Self::FinWait2 => 5,
            Self::TimeWait => 6,
            Self::Close => 7,
            Self::CloseWait => 8,
            Self::LastAck => 9,
            Self::Listen => 10,
            Self::Closing => 11,
            Self::Unknown(n) => n,
        }
    }

    /// Name as `ss` prints it (`ESTAB`, `CLOSE-WAIT`, …), for humans.
    pub fn ss_name(self) -> &'static str {
        match self {
            Self::Established => "ESTAB",
            Self::SynSent => "SYN-SENT",
            Self::SynRecv => "SYN-RECV",
            Self::FinWait1 => "FIN-WAIT-1",
            Self::FinWait2 => "FIN-WAIT-2",
            Self::TimeWait => "TIME-WAIT",
            Self::Close => "UNCONN",
            Self::CloseWait => "CLOSE-WAIT",
            Self::LastAck => "LAST-ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::Unknown(_) => "UNKNOWN",
        }
    }
}

/// The liveness-relevant part of the kernel's `struct tcp_info`, in plain units.
///
/// Times are "milliseconds ago" as the kernel reports them; `last_ack_recv_ms` is the clock
/// keepalive uses and grows without bound when the peer is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpInfo {
    /// Connection state.
    pub state: TcpState,
    /// Smoothed round-trip time, µs.
    pub rtt_us: u32,
    /// Round-trip time variance, µs.
    pub rttvar_us: u32,
    /// Current retransmission timeout (includes back-off), µs.
    pub rto_us: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Consecutive RTO retransmissions of the oldest unacked segment (resets on progress).
    pub retransmits: u8,
    /// Exponential back-off exponent of the retransmission timer.
    pub backoff: u8,
    /// Unanswered keepalive or zero-window probes.
    pub probes: u8,
    /// Total retransmitted segments over the connection's life.
    pub total_retrans: u32,
    /// ms since we last sent data.
    pub last_data_sent_ms: u32,
    /// ms since the peer last sent data.
    pub last_data_recv_ms: u32,
    /// ms since anything ACK-bearing arrived from the peer.
    pub last_ack_recv_ms: u32,
    /// Bytes queued but not sent yet (zero window or congestion), when the kernel reports it.
    pub notsent_bytes: Option<u32>,
    /// Bytes the peer acknowledged, when the kernel reports it.
    pub bytes_acked: Option<u64>,
    /// Bytes received from the peer, when the kernel reports it.
    pub bytes_received: Option<u64>,
    /// The peer's advertised receive window, bytes (Linux ≥ 5.4). With `bytes_acked` it gives
    /// the right edge of what the peer's application has made room for: it stops moving the
    /// moment that application stops reading, long before its buffers are full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snd_wnd: Option<u32>,
}

impl TcpInfo {
    /// Builds from libc's struct; fields beyond `len` (older kernels return a shorter struct)
    /// are reported as `None`.
    fn from_libc(t: &libc::tcp_info, len: usize) -> Self {
        let has = |end: usize| len >= end;
        let end_of = |off: usize, size: usize| off + size;
        Self {
            state: TcpState::from_kernel(t.tcpi_state),
            rtt_us: t.tcpi_rtt,
            rttvar_us: t.tcpi_rttvar,
            rto_us: t.tcpi_rto,
            unacked: t.tcpi_unacked,
            retransmits: t.tcpi_retransmits,
            backoff: t.tcpi_backoff,
            probes: t.tcpi_probes,
            total_retrans: t.tcpi_total_retrans,
            last_data_sent_ms: t.tcpi_last_data_sent,
            last_data_recv_ms: t.tcpi_last_data_recv,
            last_ack_recv_ms: t.tcpi_last_ack_recv,
            notsent_bytes: has(end_of(
                std::mem::offset_of!(libc::tcp_info, tcpi_notsent_bytes),
                4,
            ))
            .then_some(t.tcpi_notsent_bytes),
            bytes_acked: has(end_of(
                std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked),
                8,
            ))
            .then_some(t.tcpi_bytes_acked),
            bytes_received: has(end_of(
                std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received),
                8,
            ))
            .then_some(t.tcpi_bytes_received),
            snd_wnd: has(end_of(
                std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd),
                4,
            ))
            .then_some(t.tcpi_snd_wnd),
        }
    }

    /// Builds from the copy inet_diag sends for other processes' sockets (same kernel struct).
    pub fn from_parts(parts: TcpInfoParts) -> Self {
        Self {
            state: TcpState::from_kernel(parts.state),
            rtt_us: parts.rtt_us,
            rttvar_us: parts.rttvar_us,
            rto_us: parts.rto_us,
            unacked: parts.unacked,
            retransmits: parts.retransmits,
            backoff: parts.backoff,
            probes: parts.probes,
            total_retrans: parts.total_retrans,
            last_data_sent_ms: parts.last_data_sent_ms,
            last_data_recv_ms: parts.last_data_recv_ms,
            last_ack_recv_ms: parts.last_ack_recv_ms,
            notsent_bytes: Some(parts.notsent_bytes),
            bytes_acked: Some(parts.bytes_acked),
            bytes_received: Some(parts.bytes_received),
            snd_wnd: None,
        }
    }
}

/// Raw field values for [`TcpInfo::from_parts`] (kernel units), so that other decoders of the
/// same struct (netlink) need not depend on libc's layout.
#[derive(Debug, Clone, Copy, Default)]
#[allow(missing_docs)]
pub struct TcpInfoParts {
    pub state: u8,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub rto_us: u32,
    pub unacked: u32,
    pub retransmits: u8,
    pub backoff: u8,
    pub probes: u8,
    pub total_retrans: u32,
    pub last_data_sent_ms: u32,
    pub last_data_recv_ms: u32,
    pub last_ack_recv_ms: u32,
    pub notsent_bytes: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
}

/// Reads `TCP_INFO` of one of our own sockets (no privileges needed), e.g. for an application
/// that wants to log why it dropped a peer. Fails with `GetOption` on a non-TCP fd.
pub fn tcp_info(sock: impl AsFd) -> Result<TcpInfo, LivenessError> {
    let fd = sock.as_fd().as_raw_fd();
    let mut raw = zeroed_tcp_info();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // Hand-written because neither socket2, rustix nor nix expose TCP_INFO.
    #[allow(unsafe_code)]
    // SAFETY: `fd` is a valid open descriptor for the duration of the call (borrowed via AsFd);
    // `raw` is a properly aligned, writable `tcp_info` and `len` holds its exact size, so the
    // kernel writes at most `len` bytes into it and stores the written length back in `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut raw).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(LivenessError::GetOption {
            option: "TCP_INFO",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(TcpInfo::from_libc(&raw, len as usize))
}

fn zeroed_tcp_info() -> libc::tcp_info {
    // libc::tcp_info is plain old data; build it field by field would be long, so go through
    // a zero-initialised byte buffer via `Default`-like construction.
    #[allow(unsafe_code)]
    // SAFETY: `tcp_info` consists only of integer fields, for which all-zero bytes are valid.
    unsafe {
        std::mem::zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn reads_a_live_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        let info = tcp_info(&c).unwrap();
        assert_eq!(info.state, TcpState::Established);
        assert_eq!(info.unacked, 0);
        assert!(info.rto_us >= 200_000);
        assert_eq!(info.bytes_acked, Some(6)); // 5 bytes + SYN
        let info = tcp_info(&l).unwrap();
        assert_eq!(info.state, TcpState::Listen);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(tcp_info(&udp).is_err());
    }
}
