use super::{ChunkError, RawMessage};
use bytes::BytesMut;

/// Bounds on what a peer can make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Longest message accepted (the announced length is checked before any byte is buffered).
    pub max_message_size: u32,
    /// Most chunk streams tracked at once.
    pub max_chunk_streams: usize,
    /// Most bytes held in partially received messages across all chunk streams.
    pub max_buffered: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self { max_message_size: 8 << 20, max_chunk_streams: 64, max_buffered: 16 << 20 }
    }
}

/// Reassembles messages from chunks; per-chunk-stream state, so interleaving is fine.
#[derive(Debug)]
pub struct ChunkReader {
    limits: ReaderLimits,
}

impl ChunkReader {
    /// A reader with the peer's chunk size at the protocol default (128).
    pub fn new(limits: ReaderLimits) -> Self {
        Self { limits }
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let _ = (size, self.limits);
        Ok(())
    }

    /// Drops the partial message on `csid` (Abort message).
    pub fn abort(&mut self, csid: u32) {
        let _ = csid;
    }

    /// Consumes whole chunks from the front of `buf` and returns the next complete message, or
    /// `None` when more bytes are needed. Call again until it returns `None`.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        let _ = buf;
        Ok(None)
    }
}
