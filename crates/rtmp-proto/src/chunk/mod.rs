//! The RTMP chunk stream: messages cut into chunks that may interleave across chunk streams.

mod reader;
mod skim;
#[cfg(test)]
mod tests;
mod writer;

pub use reader::{ChunkReader, ReaderLimits};
pub use skim::Skimmed;
pub use writer::{ChunkWriter, MAX_CSID, MAX_MESSAGE_LEN, MIN_CSID};

use bytes::Bytes;

/// Chunk size every peer starts with (RTMP 1.0 §5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size a peer may announce (the top bit must be zero).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Timestamps at or above this value go in the 4-byte extended timestamp field.
pub const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;

/// The header fields of one complete message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Chunk stream id (2..=65599); 2 is reserved for protocol control messages.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// Message type id (see [`crate::message::type_id`]).
    pub type_id: u8,
    /// Message stream id (0 for control and connection-level commands).
    pub stream_id: u32,
}

/// A complete message as it came off (or goes onto) the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Where and when.
    pub header: MessageHeader,
    /// The reassembled body, in an allocation of its own (never a view of the read buffer,
    /// see `tests/pinning.rs`), shared without copying from here on.
    pub payload: Bytes,
}

/// Why the chunk stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// A message longer than the configured maximum was announced.
    #[error("message of {len} bytes announced, limit is {max}")]
    MessageTooLarge {
        /// Announced length.
        len: u32,
        /// Configured limit.
        max: u32,
    },
    /// A chunk size of 0 or with the top bit set.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
    /// A fmt 1/2/3 chunk on a chunk stream that never had a fmt 0 header.
    #[error("chunk stream {0} continues a message it never started")]
    NoPreviousHeader(u32),
    /// More distinct chunk streams than the configured limit.
    #[error("more than {0} chunk streams in use")]
    TooManyChunkStreams(usize),
    /// The bytes of partially received messages exceed the configured limit.
    #[error("partially received messages hold more than {0} bytes")]
    TooMuchBuffered(usize),
}
