//! RTMP messages: protocol control, user control, media, data and commands.

//!
//! Parsing is sans-IO and zero-copy for media: audio, video and aggregate bodies are `Bytes`
//! clones of the reassembled payload. Commands and data are always *sent* as AMF0 (types 20 and
//! 18); their AMF3-wrapped forms (17 and 15) are accepted on input because Flash-era clients
//! with `objectEncoding = 3` still send them.

mod command;
#[cfg(test)]
mod tests;

use crate::amf0::{self, Amf0Error, Value};
use crate::chunk::RawMessage;
use bytes::{BufMut, Bytes, BytesMut};

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

/// User Control event type numbers (RTMP 1.0 §7.1.7). 5 is unassigned by the spec.
pub mod event_type {
    /// Stream Begin.
    pub const STREAM_BEGIN: u16 = 0;
    /// Stream EOF.
    pub const STREAM_EOF: u16 = 1;
    /// Stream Dry.
    pub const STREAM_DRY: u16 = 2;
    /// Set Buffer Length.
    pub const SET_BUFFER_LENGTH: u16 = 3;
    /// Stream Is Recorded.
    pub const STREAM_IS_RECORDED: u16 = 4;
    /// Ping Request.
    pub const PING_REQUEST: u16 = 6;
    /// Ping Response.
    pub const PING_RESPONSE: u16 = 7;
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

/// An AMF0 (or AMF3-wrapped AMF0) command; constructors and the body codec are in `command.rs`.
///: `connect`, `publish`, `_result`, `onStatus`, ….
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
    ///
    /// Bit 31 is reserved and must be zero; rather than reject a peer that sets it, parsing and
    /// encoding both mask it off, so the value is always at most
    /// [`MAX_CHUNK_SIZE`](crate::chunk::MAX_CHUNK_SIZE). A resulting 0 is still passed on and
    /// left to the chunk reader to refuse.
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

/// Reads the big-endian u32 at the front of a fixed-size body.
fn be_u32(type_id: u8, body: &[u8]) -> Result<u32, MessageError> {
    body.first_chunk::<4>()
        .map(|b| u32::from_be_bytes(*b))
        .ok_or(MessageError::TooShort {
            type_id,
            need: 4,
            got: body.len(),
        })
}

/// Strips the one-byte AMF3 format selector of types 15 and 17; what follows is AMF0 (values
/// that switch to AMF3 with marker 0x11 are then refused by the AMF0 decoder).
fn skip_amf3_selector(type_id: u8, payload: &Bytes) -> Result<&[u8], MessageError> {
    payload.get(1..).ok_or(MessageError::TooShort {
        type_id,
        need: 1,
        got: 0,
    })
}

impl UserControl {
    /// The event type number on the wire.
    pub fn event_type(&self) -> u16 {
        match self {
            Self::StreamBegin(_) => event_type::STREAM_BEGIN,
            Self::StreamEof(_) => event_type::STREAM_EOF,
            Self::StreamDry(_) => event_type::STREAM_DRY,
            Self::SetBufferLength { .. } => event_type::SET_BUFFER_LENGTH,
            Self::StreamIsRecorded(_) => event_type::STREAM_IS_RECORDED,
            Self::PingRequest(_) => event_type::PING_REQUEST,
            Self::PingResponse(_) => event_type::PING_RESPONSE,
            Self::Other { event_type, .. } => *event_type,
        }
    }

    /// Parses a User Control body. Bytes after an event's fixed data are ignored, as peers
    /// have been seen padding them; an unknown event keeps its data untouched.
    fn parse(payload: &Bytes) -> Result<Self, MessageError> {
        let too_short = |need| MessageError::TooShort {
            type_id: type_id::USER_CONTROL,
            need,
            got: payload.len(),
        };
        let (ev, data) = payload.split_first_chunk::<2>().ok_or(too_short(2))?;
        let ev = u16::from_be_bytes(*ev);
        let u32_at = |i: usize| {
            data.get(i..)
                .and_then(<[u8]>::first_chunk::<4>)
                .map(|b| u32::from_be_bytes(*b))
                .ok_or(too_short(2 + i + 4))
        };
        Ok(match ev {
            event_type::STREAM_BEGIN => Self::StreamBegin(u32_at(0)?),
            event_type::STREAM_EOF => Self::StreamEof(u32_at(0)?),
            event_type::STREAM_DRY => Self::StreamDry(u32_at(0)?),
            event_type::SET_BUFFER_LENGTH => Self::SetBufferLength {
                stream_id: u32_at(0)?,
                millis: u32_at(4)?,
            },
            event_type::STREAM_IS_RECORDED => Self::StreamIsRecorded(u32_at(0)?),
            event_type::PING_REQUEST => Self::PingRequest(u32_at(0)?),
            event_type::PING_RESPONSE => Self::PingResponse(u32_at(0)?),
            other => Self::Other {
                event_type: other,
                data: payload.slice(2..),
            },
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_u16(self.event_type());
        match self {
            Self::StreamBegin(v)
            | Self::StreamEof(v)
            | Self::StreamDry(v)
            | Self::StreamIsRecorded(v)
            | Self::PingRequest(v)
            | Self::PingResponse(v) => out.put_u32(*v),
            Self::SetBufferLength { stream_id, millis } => {
                out.put_u32(*stream_id);
                out.put_u32(*millis);
            }
            Self::Other { data, .. } => out.put_slice(data),
        }
    }
}

impl Message {
    /// Parses the body of `raw` according to its type id.
    pub fn parse(raw: &RawMessage) -> Result<Self, MessageError> {
        Self::parse_payload(raw.header.type_id, &raw.payload)
    }

    /// Parses a body given its type id, for callers that do not hold a [`RawMessage`] (FLV
    /// aggregate sub-tags, tests). Media bodies are returned as clones of `payload`, not copies.
    pub fn parse_payload(type_id: u8, payload: &Bytes) -> Result<Self, MessageError> {
        let amf = |source| MessageError::Amf0 { type_id, source };
        Ok(match type_id {
            type_id::SET_CHUNK_SIZE => {
                Self::SetChunkSize(be_u32(type_id, payload)? & crate::chunk::MAX_CHUNK_SIZE)
            }
            type_id::ABORT => Self::Abort(be_u32(type_id, payload)?),
            type_id::ACKNOWLEDGEMENT => Self::Acknowledgement(be_u32(type_id, payload)?),
            type_id::USER_CONTROL => Self::UserControl(UserControl::parse(payload)?),
            type_id::WINDOW_ACK_SIZE => Self::WindowAckSize(be_u32(type_id, payload)?),
            type_id::SET_PEER_BANDWIDTH => Self::SetPeerBandwidth {
                size: be_u32(type_id, payload)?,
                // Some clients send only the size; 2 (dynamic) is the neutral reading.
                limit: payload.get(4).copied().unwrap_or(2),
            },
            type_id::AUDIO => Self::Audio(payload.clone()),
            type_id::VIDEO => Self::Video(payload.clone()),
            type_id::DATA_AMF0 => Self::Data(amf0::decode_all(payload).map_err(amf)?),
            type_id::DATA_AMF3 => {
                let body = skip_amf3_selector(type_id, payload)?;
                Self::Data(amf0::decode_all(body).map_err(amf)?)
            }
            type_id::COMMAND_AMF0 => Self::Command(Command::decode_with_type(type_id, payload)?),
            type_id::COMMAND_AMF3 => {
                let body = skip_amf3_selector(type_id, payload)?;
                Self::Command(Command::decode_with_type(type_id, body)?)
            }
            type_id::AGGREGATE => Self::Aggregate(payload.clone()),
            _ => Self::Other {
                type_id,
                payload: payload.clone(),
            },
        })
    }

    /// The type id this message is sent with: AMF0 for data and commands.
    pub fn type_id(&self) -> u8 {
        match self {
            Self::SetChunkSize(_) => type_id::SET_CHUNK_SIZE,
            Self::Abort(_) => type_id::ABORT,
            Self::Acknowledgement(_) => type_id::ACKNOWLEDGEMENT,
            Self::UserControl(_) => type_id::USER_CONTROL,
            Self::WindowAckSize(_) => type_id::WINDOW_ACK_SIZE,
            Self::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Self::Audio(_) => type_id::AUDIO,
            Self::Video(_) => type_id::VIDEO,
            Self::Data(_) => type_id::DATA_AMF0,
            Self::Command(_) => type_id::COMMAND_AMF0,
            Self::Aggregate(_) => type_id::AGGREGATE,
            Self::Other { type_id, .. } => *type_id,
        }
    }

    /// Type id and body for sending this message.
    ///
    /// `parse_payload(encode())` gives the message back, except for [`Message::Other`] carrying
    /// a type id this module knows (it then parses as that type) and a `SetChunkSize` with bit
    /// 31 set (masked).
    pub fn encode(&self) -> (u8, Bytes) {
        let body = match self {
            Self::SetChunkSize(v) => u32_body(v & crate::chunk::MAX_CHUNK_SIZE),
            Self::Abort(v) | Self::Acknowledgement(v) | Self::WindowAckSize(v) => u32_body(*v),
            Self::UserControl(uc) => {
                let mut out = BytesMut::with_capacity(10);
                uc.encode(&mut out);
                out.freeze()
            }
            Self::SetPeerBandwidth { size, limit } => {
                let mut out = BytesMut::with_capacity(5);
                out.put_u32(*size);
                out.put_u8(*limit);
                out.freeze()
            }
            Self::Audio(p) | Self::Video(p) | Self::Aggregate(p) => p.clone(),
            Self::Other { payload, .. } => payload.clone(),
            Self::Data(values) => {
                let mut out = BytesMut::new();
                amf0::encode_all(values, &mut out);
                out.freeze()
            }
            Self::Command(cmd) => cmd.encode(),
        };
        (self.type_id(), body)
    }

    /// A data message carrying stream metadata as players expect it: `onMetaData` followed by
    /// the properties (conventionally an ECMA array).
    pub fn on_metadata(metadata: Value) -> Self {
        Self::Data(vec![Value::string("onMetaData"), metadata])
    }

    /// Wraps a command.
    pub fn command(cmd: Command) -> Self {
        Self::Command(cmd)
    }
}

fn u32_body(v: u32) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}
