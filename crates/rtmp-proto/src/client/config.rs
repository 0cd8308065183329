//! What an outgoing connection asks for and how long it waits.

use crate::amf0::Value;
use crate::chunk::ReaderLimits;
use std::time::Duration;

/// How a player's audio and video reach the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaMode {
    /// Every message reassembled, as [`ClientEvent::Media`](super::ClientEvent::Media) with its
    /// payload: what a relay pulling a stream needs.
    #[default]
    Full,
    /// Only the header and length of each audio and video message, as
    /// [`ClientEvent::MediaHeader`](super::ClientEvent::MediaHeader); bodies are passed over
    /// where they lie in the input, never copied. For load generators that count what arrives
    /// and must not cost more than the server they measure.
    HeadersOnly,
}

/// The liveness bounds the client session enforces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// From the start until `connect` is answered, and from each `createStream` / `publish` /
    /// `play` request until it is: a server that accepts the TCP connection and then says
    /// nothing cannot hold the connection.
    pub setup: Duration,
    /// A player that receives no media for this long is closed; `None` never closes on it.
    pub media_idle: Option<Duration>,
    /// Queued output that does not move for this long closes the connection (fed by
    /// [`ClientSession::on_write_state`](super::ClientSession::on_write_state)).
    pub write_stall: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            setup: Duration::from_secs(10),
            media_idle: Some(Duration::from_secs(10)),
            write_stall: Duration::from_secs(10),
        }
    }
}

/// Per-connection settings of a [`ClientSession`](super::ClientSession).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Application name (`connect`'s `app`), e.g. `live`; may hold a `?query`.
    pub app: String,
    /// `tcUrl`: the URL up to and including the app, e.g. `rtmp://host:1935/live`.
    pub tc_url: String,
    /// `flashVer`; some servers log it, a few reject clients without one.
    pub flash_ver: String,
    /// Further `connect` properties (e.g. `swfUrl`, `pageUrl`, `capabilities`, tokens); one
    /// whose key is already in the object replaces that entry.
    pub connect_properties: Vec<(String, Value)>,
    /// Our outbound chunk size, announced right after the handshake (128, the protocol
    /// default, is not announced). Larger chunks cost a server fewer headers to parse.
    pub chunk_size: u32,
    /// Buffer length a player announces with `play` (Set Buffer Length), in milliseconds.
    pub buffer_length_ms: u32,
    /// Bounds on what the server can make the chunk reader hold.
    pub reader_limits: ReaderLimits,
    /// Liveness deadlines.
    pub timeouts: ClientTimeouts,
    /// How a player's media is reported.
    pub media: MediaMode,
}

impl ClientConfig {
    /// Defaults for everything but the application and its `tcUrl`.
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: "FMLE/3.0 (compatible; Lifeline)".into(),
            connect_properties: Vec::new(),
            chunk_size: 4096,
            buffer_length_ms: 1000,
            reader_limits: ReaderLimits::default(),
            timeouts: ClientTimeouts::default(),
            media: MediaMode::Full,
        }
    }
}
