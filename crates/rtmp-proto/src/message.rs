//! RTMP messages: protocol control, user control, media, data and commands.

use crate::amf0::{Amf0Error, Value};
use crate::chunk::RawMessage;
use bytes::Bytes;

/// Message type ids (RTMP 1.0 §5.4, §7.1).
pub mod type_id {
    /// Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message.
    pub const ABORT: u8 = 2;
    /// Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data.
    pub const AUDIO: u8 = 8;
    /// Video data.
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3.
    pub const DATA_AMF3: u8 = 15;
    /// Shared object, AMF3.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message, AMF3.
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message, AMF0 (`@setDataFrame`, `onMetaData`).
    pub const DATA_AMF0: u8 = 18;
    /// Shared object, AMF0.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message, AMF0.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message.
    pub const AGGREGATE: u8 = 22;
}

/// User Control Message events (RTMP 1.0 §7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// 0: the stream is ready for use.
    StreamBegin(u32),
    /// 1: playback of the stream is over.
    StreamEof(u32),
    /// 2: no more data on the stream for now.
    StreamDry(u32),
    /// 3: the client's buffer length for a stream.
    SetBufferLength {
        /// Message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        millis: u32,
    },
    /// 4: the stream is a recorded one.
    StreamIsRecorded(u32),
    /// 6: "are you there?", carrying the sender's timestamp.
    PingRequest(u32),
    /// 7: the answer, echoing the request's timestamp.
    PingResponse(u32),
    /// Any other event type, kept as is.
    Other {
        /// Event type.
        event_type: u16,
        /// Event data.
        data: Bytes,
    },
}

/// An AMF0 (or AMF3-wrapped AMF0) command: `connect`, `publish`, `_result`, `onStatus`, ….
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name.
    pub name: String,
    /// Transaction id; 0 when no reply is expected.
    pub transaction_id: f64,
    /// Command object (often `Null`).
    pub command_object: Value,
    /// Further arguments.
    pub args: Vec<Value>,
}

/// One parsed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// 1: the sender's new chunk size.
    SetChunkSize(u32),
    /// 2: discard the partial message on this chunk stream.
    Abort(u32),
    /// 3: bytes received so far by the peer.
    Acknowledgement(u32),
    /// 4.
    UserControl(UserControl),
    /// 5: how many bytes the sender may receive before it must acknowledge.
    WindowAckSize(u32),
    /// 6: output bandwidth limit and limit type (0 hard, 1 soft, 2 dynamic).
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// Limit type.
        limit: u8,
    },
    /// 8: an FLV audio tag body.
    Audio(Bytes),
    /// 9: an FLV video tag body.
    Video(Bytes),
    /// 18 (or 15): AMF0 data values, e.g. `@setDataFrame`, `onMetaData`, `{…}`.
    Data(Vec<Value>),
    /// 20 (or 17): a command.
    Command(Command),
    /// 22: several FLV tags in one message, kept whole.
    Aggregate(Bytes),
    /// Shared objects and unknown types, kept so the caller can log or ignore them.
    Other {
        /// Message type id.
        type_id: u8,
        /// Body.
        payload: Bytes,
    },
}

/// Why a message body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A fixed-size body shorter than its type requires.
    #[error("message type {type_id} needs {need} bytes, got {got}")]
    TooShort {
        /// Message type id.
        type_id: u8,
        /// Bytes required.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// The AMF0 body of a command or data message is malformed.
    #[error("bad AMF0 in message type {type_id}: {source}")]
    Amf0 {
        /// Message type id.
        type_id: u8,
        /// What was wrong.
        source: Amf0Error,
    },
    /// A command whose first values are not a name and a transaction id.
    #[error("command message without a name and transaction id")]
    MalformedCommand,
}

impl Message {
    /// Parses the body of `raw` according to its type id.
    pub fn parse(raw: &RawMessage) -> Result<Self, MessageError> {
        let _ = raw;
        Err(MessageError::MalformedCommand)
    }

    /// Type id and body for sending this message.
    pub fn encode(&self) -> (u8, Bytes) {
        (0, Bytes::new())
    }
}
