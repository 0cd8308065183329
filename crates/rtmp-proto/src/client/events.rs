//! What a client session reports to its driver, and what it refuses to do.

use crate::session::{Media, MediaKind};

/// Something the driver of a [`ClientSession`](super::ClientSession) should know.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected {
        /// The server's `fmsVer`, when it sent one (worth logging for relays).
        server_version: Option<String>,
    },
    /// `createStream` was answered with this message stream id.
    StreamCreated(u32),
    /// `NetStream.Publish.Start`: media may be sent now.
    Publishing,
    /// `NetStream.Play.Start`: media will follow.
    Playing,
    /// The server said no: an `_error` answer to `connect`, `createStream`, `publish` or
    /// `play`, or an `onStatus` of level `error` (e.g. `NetStream.Publish.BadName`). The
    /// session does nothing more; the driver closes the connection.
    Refused {
        /// The status code, e.g. `NetStream.Publish.BadName`.
        code: String,
        /// The server's own words, e.g. `Already publishing`.
        description: String,
    },
    /// Any other `onStatus` (e.g. `NetStream.Play.Reset`, `NetStream.Play.PublishNotify`),
    /// for logs.
    Status {
        /// `status` or `warning`.
        level: String,
        /// The status code.
        code: String,
        /// The server's description.
        description: String,
    },
    /// Media or metadata for a player ([`MediaMode::Full`](super::MediaMode::Full)); metadata
    /// is always reported this way, as `onMetaData, {…}`.
    Media(Media),
    /// An audio or video message for a player in
    /// [`MediaMode::HeadersOnly`](super::MediaMode::HeadersOnly).
    MediaHeader(MediaHeader),
    /// The stream being played ended (reported once until it starts again).
    StreamEnded(StreamEnd),
    /// The server answered one of our pings with this timestamp.
    PingResponse(u32),
}

/// Header and length of one media message whose body was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHeader {
    /// Audio or video.
    pub kind: MediaKind,
    /// Timestamp as the server sent it.
    pub timestamp: u32,
    /// Body length in bytes.
    pub len: u32,
}

/// How the server said the stream being played ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `NetStream.Play.UnpublishNotify`: the publisher left; the server keeps the player.
    Unpublished,
    /// `NetStream.Play.Stop` or `NetStream.Play.Complete`.
    Stopped,
    /// User Control Stream EOF.
    Eof,
}

/// Where a client session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// C0/C1 sent, waiting for S0/S1/S2.
    Handshake,
    /// `connect` sent, no answer yet.
    Connecting,
    /// Connected; no stream, or one created and not started.
    Connected,
    /// `createStream`, `publish` or `play` in flight.
    Starting,
    /// Publishing on the given message stream.
    Publishing(u32),
    /// Playing the given message stream.
    Playing(u32),
    /// The server refused a request; nothing more will be sent.
    Refused,
}

/// Why a client session would not do what its driver asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Messages cannot be sent before the handshake is over.
    #[error("the handshake is not finished")]
    Handshaking,
    /// Media needs `NetStream.Publish.Start` first.
    #[error("not publishing")]
    NotPublishing,
    /// One publish or play per connection at a time.
    #[error("a publish or play is already under way")]
    Busy,
    /// The server refused an earlier request; the connection is done.
    #[error("the server refused an earlier request")]
    Refused,
    /// A chunk size of 0 or with the top bit set.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
}
