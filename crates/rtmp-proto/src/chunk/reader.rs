use super::{
    ChunkError, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, MAX_CHUNK_SIZE, MessageHeader, RawMessage,
};
use bytes::{Buf, Bytes, BytesMut};

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
        Self {
            max_message_size: 8 << 20,
            max_chunk_streams: 64,
            max_buffered: 16 << 20,
        }
    }
}

/// What a chunk stream remembers between chunks: the last header (fmt 1/2/3 inherit from it)
/// and the body of the message in progress, if any.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta a fmt 3 message start adds; after fmt 0 this is the fmt 0 timestamp field.
    delta: u32,
    pub(super) length: u32,
    type_id: u8,
    stream_id: u32,
    /// The extended timestamp field of the last fmt 0/1/2 header, when it had one; fmt 3
    /// chunks may repeat it.
    extended: Option<u32>,
    /// Body received so far; grows chunk by chunk, never preallocated to `length`.
    pub(super) partial: BytesMut,
    /// Whether a message is half received (a fmt 3 chunk then continues it).
    pub(super) in_progress: bool,
    /// Body bytes of the message in progress passed over by [`ChunkReader::skim`] (kept
    /// apart from `partial`, which stays empty for a skimmed message).
    pub(super) skipped: u32,
}

/// Header fields of a chunk that starts a message.
#[derive(Debug, Clone, Copy)]
struct Start {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: Option<u32>,
}

/// A chunk whose header is buffered, parsed but not yet applied.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) csid: u32,
    /// Basic header + message header + extended timestamp, in bytes.
    pub(super) header_len: usize,
    pub(super) payload_len: usize,
    /// `None` for a continuation of the message in progress.
    start: Option<Start>,
    /// Type of the message the chunk belongs to.
    pub(super) type_id: u8,
    /// Whether the chunk's payload completes its message.
    completes: bool,
    /// Bytes held in partial messages if this chunk's message is dropped or continued.
    held_before: usize,
    /// Where the chunk stream's state is in [`ChunkReader::streams`]; `None` for a new one.
    slot: Option<usize>,
}

impl Chunk {
    /// Whether the chunk starts a message (rather than continuing the one in progress).
    pub(super) fn starts(&self) -> bool {
        self.start.is_some()
    }
}

/// Reassembles messages from chunks; per-chunk-stream state, so interleaving is fine.
///
/// Parsing is two-phase: a chunk is parsed from a borrowed view of the input and only applied
/// (state updated, bytes consumed) once all its bytes are buffered, so feeding the input one byte
/// at a time gives the same messages as feeding it at once.
///
/// Timestamp rules (RTMP 1.0 §5.3.1.2): fmt 0 carries the absolute timestamp, fmt 1/2 a delta
/// added to the previous message's timestamp. A fmt 3 chunk that starts a new message adds the
/// previous delta again; after a fmt 0 header that "delta" is the fmt 0 timestamp field itself,
/// which is what ffmpeg and librtmp do, so streams they produce or accept decode the same here.
///
/// Extended timestamps on fmt 3 chunks: some encoders (ffmpeg, FMLE) repeat the 4-byte field on
/// every fmt 3 chunk of a stream whose header used one, others never do. The reader peeks: the 4
/// bytes are consumed only when they equal the stored extended value. When fewer than 4 bytes are
/// buffered and they match the value so far, the reader waits for more; a payload that happens to
/// start with those exact 4 bytes from an encoder that does not repeat the field is misread —
/// the same trade-off SRS documents.
///
/// A fmt 0/1/2 header arriving while a message is half received on the same chunk stream drops
/// the partial message and starts the new one (as an implicit Abort), rather than failing.
#[derive(Debug)]
pub struct ChunkReader {
    limits: ReaderLimits,
    chunk_size: u32,
    /// Per chunk stream state, looked up by a linear scan: a connection uses a handful of
    /// chunk streams (at most `max_chunk_streams`), where a scan beats hashing and the table
    /// stays as small as the streams in use.
    pub(super) streams: Vec<(u32, StreamState)>,
    /// Bytes held in `partial` across all chunk streams.
    pub(super) buffered: usize,
    pub(super) bytes_read: u64,
    /// [`Self::skim`] only: the slot in `streams` and the payload bytes still to pass over of
    /// the skimmed chunk whose header was consumed but whose payload is not all in yet.
    pub(super) skimming: Option<(usize, u32)>,
}

impl ChunkReader {
    /// A reader with the peer's chunk size at the protocol default (128).
    pub fn new(limits: ReaderLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            buffered: 0,
            bytes_read: 0,
            skimming: None,
        }
    }

    /// Applies the peer's Set Chunk Size; 0 or a value with the top bit set is a protocol error.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// The peer's chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Drops the partial message on `csid` (Abort message); the header state is kept because
    /// later fmt 1/2/3 chunks may still refer to it.
    pub fn abort(&mut self, csid: u32) {
        if let Some((_, state)) = self.streams.iter_mut().find(|(c, _)| *c == csid) {
            self.buffered = self.buffered.saturating_sub(state.partial.len());
            state.partial = BytesMut::new();
            state.in_progress = false;
            state.skipped = 0;
        }
    }

    /// Bytes of whole chunks consumed since creation, for Acknowledgement windows. Bytes before
    /// the chunk stream (the handshake) are not counted; the caller adds them.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Bytes currently held in partially received messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Consumes whole chunks from the front of `buf` and returns the next complete message, or
    /// `None` when more bytes are needed. Call again until it returns `None`.
    ///
    /// An error is fatal for the connection: the reader's state is then unspecified.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(chunk) = self.parse(buf)? else {
                return Ok(None);
            };
            if let Some(message) = self.apply(chunk, buf) {
                return Ok(Some(message));
            }
        }
    }

    /// Parses the chunk at the front of `buf` without consuming anything; `None` until the whole
    /// chunk is buffered. Limit errors are raised as soon as the header shows them.
    fn parse(&self, buf: &[u8]) -> Result<Option<Chunk>, ChunkError> {
        let Some(chunk) = self.parse_header(buf)? else {
            return Ok(None);
        };
        self.check_held(&chunk)?;
        match chunk.header_len.checked_add(chunk.payload_len) {
            Some(end) if end <= buf.len() => Ok(Some(chunk)),
            _ => Ok(None),
        }
    }

    /// Refuses a chunk whose bytes would push the partial messages held past the limit.
    pub(super) fn check_held(&self, chunk: &Chunk) -> Result<(), ChunkError> {
        if !chunk.completes
            && chunk.held_before.saturating_add(chunk.payload_len) > self.limits.max_buffered
        {
            return Err(ChunkError::TooMuchBuffered(self.limits.max_buffered));
        }
        Ok(())
    }

    /// Parses the chunk header at the front of `buf` (and decides the fmt 3 extended timestamp
    /// question); `None` until the header is buffered. The payload need not be there yet.
    pub(super) fn parse_header(&self, buf: &[u8]) -> Result<Option<Chunk>, ChunkError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match buf.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + u32::from(b2) * 256, 3),
                _ => return Ok(None),
            },
            low => (u32::from(low), 1),
        };

        let slot = self.streams.iter().position(|(c, _)| *c == csid);
        let prev = slot
            .and_then(|i| self.streams.get(i))
            .map(|(_, state)| state);
        let prev = match (fmt, prev) {
            (0, None) => {
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams(
                        self.limits.max_chunk_streams,
                    ));
                }
                None
            }
            (_, None) => return Err(ChunkError::NoPreviousHeader(csid)),
            (_, Some(p)) => Some(p),
        };

        let header_size = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let Some(h) = buf.get(pos..pos + header_size) else {
            return Ok(None);
        };
        pos += header_size;

        let start = match (fmt, prev) {
            (0..=2, _) => {
                let field = be24(&h[0..3]);
                let (value, extended) = if field == EXTENDED_TIMESTAMP {
                    let Some(ext) = buf.get(pos..pos + 4) else {
                        return Ok(None);
                    };
                    pos += 4;
                    let ext = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
                    (ext, Some(ext))
                } else {
                    (field, None)
                };
                let start = match (fmt, prev) {
                    (0, _) => Start {
                        timestamp: value,
                        delta: value,
                        length: be24(&h[3..6]),
                        type_id: h[6],
                        stream_id: u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
                        extended,
                    },
                    (1, Some(p)) => Start {
                        timestamp: p.timestamp.wrapping_add(value),
                        delta: value,
                        length: be24(&h[3..6]),
                        type_id: h[6],
                        stream_id: p.stream_id,
                        extended,
                    },
                    (_, Some(p)) => Start {
                        timestamp: p.timestamp.wrapping_add(value),
                        delta: value,
                        length: p.length,
                        type_id: p.type_id,
                        stream_id: p.stream_id,
                        extended,
                    },
                    (_, None) => return Err(ChunkError::NoPreviousHeader(csid)),
                };
                Some(start)
            }
            (_, Some(p)) => {
                if let Some(ext) = p.extended {
                    let expected = ext.to_be_bytes();
                    let rest = buf.get(pos..).unwrap_or_default();
                    let avail = &rest[..rest.len().min(4)];
                    if avail.len() == 4 {
                        if avail == expected {
                            pos += 4;
                        }
                    } else if avail == &expected[..avail.len()] {
                        // Cannot tell yet whether the field is repeated.
                        return Ok(None);
                    }
                }
                if p.in_progress {
                    None
                } else {
                    Some(Start {
                        timestamp: p.timestamp.wrapping_add(p.delta),
                        delta: p.delta,
                        length: p.length,
                        type_id: p.type_id,
                        stream_id: p.stream_id,
                        extended: p.extended,
                    })
                }
            }
            (_, None) => return Err(ChunkError::NoPreviousHeader(csid)),
        };

        let (remaining, held_before) = match (&start, prev) {
            (Some(s), p) => {
                if s.length > self.limits.max_message_size {
                    return Err(ChunkError::MessageTooLarge {
                        len: s.length,
                        max: self.limits.max_message_size,
                    });
                }
                // A new header drops whatever was half received on this chunk stream.
                let dropped = p.map_or(0, |p| p.partial.len());
                (s.length, self.buffered.saturating_sub(dropped))
            }
            (None, Some(p)) => {
                let got = u32::try_from(p.partial.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(p.skipped);
                (p.length.saturating_sub(got), self.buffered)
            }
            (None, None) => return Err(ChunkError::NoPreviousHeader(csid)),
        };
        let type_id = match (&start, prev) {
            (Some(s), _) => s.type_id,
            (None, Some(p)) => p.type_id,
            (None, None) => return Err(ChunkError::NoPreviousHeader(csid)),
        };
        let payload_len = remaining.min(self.chunk_size);
        let completes = payload_len == remaining;
        let payload_len = usize::try_from(payload_len).unwrap_or(usize::MAX);
        Ok(Some(Chunk {
            csid,
            header_len: pos,
            payload_len,
            start,
            type_id,
            completes,
            held_before,
            slot,
        }))
    }

    /// Consumes a fully buffered chunk and updates its chunk stream; returns the message it
    /// completes, if any.
    fn apply(&mut self, chunk: Chunk, buf: &mut BytesMut) -> Option<RawMessage> {
        let slot = self.begin(&chunk);
        let Some((_, state)) = self.streams.get_mut(slot) else {
            // `begin` returns a slot it just checked or filled.
            return None;
        };
        if let Some(s) = chunk.start {
            buf.advance(chunk.header_len);
            if u32::try_from(chunk.payload_len).ok() == Some(s.length) {
                // Whole message in one chunk: copied out, not split off. A split would share
                // the read buffer's allocation (64 KiB once the peer has sent a keyframe), so
                // every message a cache or a ring still holds would pin one whole buffer, and
                // the next read would have to allocate a fresh one: measured 2.8 MiB per
                // ffmpeg-like publisher (500 publishers: 1.4 GiB). A copy of one message is
                // cheap next to that, and the read buffer stays unique and is reused.
                let payload = Bytes::copy_from_slice(&buf[..chunk.payload_len]);
                buf.advance(chunk.payload_len);
                return Some(RawMessage {
                    header: header_of(chunk.csid, state),
                    payload,
                });
            }
            state.partial.extend_from_slice(&buf[..chunk.payload_len]);
            buf.advance(chunk.payload_len);
            state.in_progress = true;
            self.buffered = self.buffered.saturating_add(chunk.payload_len);
            return None;
        }
        buf.advance(chunk.header_len);
        state.partial.extend_from_slice(&buf[..chunk.payload_len]);
        buf.advance(chunk.payload_len);
        self.buffered = self.buffered.saturating_add(chunk.payload_len);
        if u32::try_from(state.partial.len()).ok() != Some(state.length) {
            return None;
        }
        let payload = std::mem::take(&mut state.partial).freeze();
        state.in_progress = false;
        self.buffered = self.buffered.saturating_sub(payload.len());
        Some(RawMessage {
            header: header_of(chunk.csid, state),
            payload,
        })
    }

    /// Counts the chunk's bytes and, for a chunk that starts a message, makes its header the
    /// chunk stream's (dropping whatever was half received there); returns the stream's slot.
    pub(super) fn begin(&mut self, chunk: &Chunk) -> usize {
        let total = chunk.header_len + chunk.payload_len;
        self.bytes_read = self.bytes_read.wrapping_add(total as u64);
        let slot = match chunk.slot {
            Some(i) if i < self.streams.len() => i,
            _ => {
                // Room for two at first (control and commands: all a connection that has not
                // published or played yet uses), not the four a first push would reserve.
                if self.streams.capacity() == 0 {
                    self.streams.reserve_exact(2);
                }
                self.streams.push((chunk.csid, StreamState::default()));
                self.streams.len() - 1
            }
        };
        if let (Some(s), Some((_, state))) = (chunk.start, self.streams.get_mut(slot)) {
            if state.in_progress {
                self.buffered = self.buffered.saturating_sub(state.partial.len());
                state.partial = BytesMut::new();
                state.in_progress = false;
                state.skipped = 0;
            }
            state.timestamp = s.timestamp;
            state.delta = s.delta;
            state.length = s.length;
            state.type_id = s.type_id;
            state.stream_id = s.stream_id;
            state.extended = s.extended;
        }
        slot
    }
}

pub(super) fn header_of(csid: u32, state: &StreamState) -> MessageHeader {
    MessageHeader {
        csid,
        timestamp: state.timestamp,
        type_id: state.type_id,
        stream_id: state.stream_id,
    }
}

fn be24(b: &[u8]) -> u32 {
    match b {
        [a, b, c, ..] => u32::from(*a) << 16 | u32::from(*b) << 8 | u32::from(*c),
        _ => 0,
    }
}
