//! Why a connection ended: exactly one reason per connection, shown in logs, the API and metrics.

use std::fmt;

/// The one reason a connection was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed cleanly (FIN).
    PeerClosed,
    /// The peer reset the connection (RST).
    PeerReset,
    /// Handshake, connect and publish/play did not complete in time.
    HandshakeTimeout,
    /// A publisher sent nothing for `publish_idle_timeout`.
    PublishIdle,
    /// A player's socket accepted no bytes for `play_stall_timeout`, or it fell too far behind.
    PlayStall,
    /// An RTMP Ping Request went unanswered.
    PingTimeout,
    /// An outgoing player connection (a client session) received no media for its idle
    /// timeout: the origin stopped sending.
    MediaIdle,
    /// An outgoing connection's queued output did not move for its write-stall bound: the
    /// server we publish to stopped reading.
    WriteStall,
    /// Data in flight and no TCP ACK from the peer for too long: the host is gone.
    PeerUnreachable,
    /// The kernel's keepalive probes went unanswered (ETIMEDOUT on an idle socket).
    KeepaliveTimeout,
    /// The kernel's TCP_USER_TIMEOUT expired (ETIMEDOUT with data in flight).
    UserTimeout,
    /// The peer broke the protocol; the detail says how.
    ProtocolError(String),
    /// The server refused what the peer asked for (e.g. publishing a name that is live).
    Refused(String),
    /// A newer publisher took over this connection's stream name.
    TakenOver,
    /// An operator kicked the connection.
    Kicked,
    /// A cluster node could not renew its etcd lease in time: it stops its publishers before
    /// the lease can expire on etcd's side, so another node may take their names.
    ClusterLeaseLost,
    /// The server is shutting down.
    Shutdown,
    /// A keep-alive HTTP connection stayed idle between requests for too long.
    IdleTimeout,
    /// An HLS session made no request for three target durations.
    SessionExpired,
    /// The exchange is over: an HTTP answer sent with `Connection: close`.
    Completed,
}

impl CloseReason {
    /// A stable, low-cardinality label for metrics and JSON.
    pub fn label(&self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::PeerReset => "peer_reset",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::PublishIdle => "publish_idle",
            Self::PlayStall => "play_stall",
            Self::PingTimeout => "ping_timeout",
            Self::MediaIdle => "media_idle",
            Self::WriteStall => "write_stall",
            Self::PeerUnreachable => "peer_unreachable",
            Self::KeepaliveTimeout => "keepalive_timeout",
            Self::UserTimeout => "user_timeout",
            Self::ProtocolError(_) => "protocol_error",
            Self::Refused(_) => "refused",
            Self::TakenOver => "taken_over",
            Self::Kicked => "kicked",
            Self::ClusterLeaseLost => "cluster_lease_lost",
            Self::Shutdown => "shutdown",
            Self::IdleTimeout => "idle_timeout",
            Self::SessionExpired => "session_expired",
            Self::Completed => "completed",
        }
    }

    /// Whether the peer is judged dead or unwanted, so the socket should be reset (zero
    /// linger) rather than closed: the kernel then stops retransmitting into the void.
    pub fn wants_reset(&self) -> bool {
        !matches!(
            self,
            Self::PeerClosed
                | Self::Refused(_)
                | Self::Shutdown
                | Self::IdleTimeout
                | Self::SessionExpired
                | Self::Completed
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProtocolError(d) | Self::Refused(d) => write!(f, "{}: {d}", self.label()),
            _ => f.write_str(self.label()),
        }
    }
}
