use super::{EXTENDED_TIMESTAMP, MessageHeader};
use bytes::{BufMut, Bytes, BytesMut};

/// Lowest chunk stream id a message can use (0 and 1 select the longer basic header forms).
pub const MIN_CSID: u32 = 2;
/// Highest chunk stream id the 3-byte basic header can carry.
pub const MAX_CSID: u32 = 65_599;
/// Longest payload the 3-byte message length field can announce.
pub const MAX_MESSAGE_LEN: usize = 0x00FF_FFFF;

/// Cuts messages into chunks: fmt 0 for the first chunk, fmt 3 for the rest, so the encoding
/// depends only on the message and the chunk size and can be shared by every player.
///
/// Never relying on a previous header costs 7–11 bytes per message over a compressing encoder,
/// but it lets one encoded media message be fanned out to every player as the same `Bytes`, and
/// a player that joins mid-stream needs no per-connection header state.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    chunk_size: u32,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self {
            chunk_size: super::DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkWriter {
    /// The chunk size in force (what we told the peer with Set Chunk Size).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the chunk size; the caller must have sent Set Chunk Size first.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, super::MAX_CHUNK_SIZE);
    }

    /// Exact number of bytes [`write`](Self::write) appends for this message, so buffers can
    /// be sized once.
    pub fn encoded_len(&self, header: &MessageHeader, payload_len: usize) -> usize {
        let payload_len = payload_len.min(MAX_MESSAGE_LEN);
        let chunk_size = usize::try_from(self.chunk_size)
            .unwrap_or(usize::MAX)
            .max(1);
        let chunks = payload_len.div_ceil(chunk_size).max(1);
        let ext = if header.timestamp >= EXTENDED_TIMESTAMP {
            4
        } else {
            0
        };
        let basic = basic_header_len(clamp_csid(header.csid));
        chunks * (basic + ext) + 11 + payload_len
    }

    /// Encodes one message into a fresh buffer, for sharing between players.
    pub fn encode(&self, header: &MessageHeader, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len(header, payload.len()));
        self.write(header, payload, &mut out);
        out.freeze()
    }

    /// Appends the chunks of one message to `out`.
    ///
    /// The header is not validated because it comes from our own code: a csid outside
    /// 2..=65599 is clamped into that range, and a payload longer than the 24-bit length field
    /// allows (16 MiB − 1) is truncated so the stream stays well formed.
    pub fn write(&self, header: &MessageHeader, payload: &[u8], out: &mut BytesMut) {
        let payload = &payload[..payload.len().min(MAX_MESSAGE_LEN)];
        out.reserve(self.encoded_len(header, payload.len()));
        let csid = clamp_csid(header.csid);
        let extended = header.timestamp >= EXTENDED_TIMESTAMP;
        let chunk_size = usize::try_from(self.chunk_size)
            .unwrap_or(usize::MAX)
            .max(1);

        self.write_header(header, payload.len(), out);
        let mut chunks = payload.chunks(chunk_size);
        if let Some(first) = chunks.next() {
            out.put_slice(first);
        }
        for chunk in chunks {
            put_basic_header(out, 3, csid);
            if extended {
                // ffmpeg expects the extended timestamp repeated on every fmt 3 chunk.
                out.put_u32(header.timestamp);
            }
            out.put_slice(chunk);
        }
    }

    /// Appends only the fmt 0 header that starts a message of `payload_len` bytes (capped at
    /// the 24-bit limit), for callers that send the body themselves: a vectored write of
    /// header and payload slices, or a test announcing a message it never sends.
    pub fn write_header(&self, header: &MessageHeader, payload_len: usize, out: &mut BytesMut) {
        let csid = clamp_csid(header.csid);
        let extended = header.timestamp >= EXTENDED_TIMESTAMP;
        put_basic_header(out, 0, csid);
        put_u24(
            out,
            if extended {
                EXTENDED_TIMESTAMP
            } else {
                header.timestamp
            },
        );
        // Cannot truncate: capped at 24 bits.
        let len = payload_len.min(MAX_MESSAGE_LEN);
        put_u24(out, u32::try_from(len).unwrap_or(EXTENDED_TIMESTAMP));
        out.put_u8(header.type_id);
        out.put_u32_le(header.stream_id);
        if extended {
            out.put_u32(header.timestamp);
        }
    }
}

fn clamp_csid(csid: u32) -> u32 {
    csid.clamp(MIN_CSID, MAX_CSID)
}

fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

/// Writes the 1/2/3-byte basic header; `csid` must already be in 2..=65599.
pub(super) fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        0..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let id = csid.saturating_sub(64);
            out.put_u8(fmt | 1);
            out.put_u8((id & 0xff) as u8);
            out.put_u8(((id >> 8) & 0xff) as u8);
        }
    }
}

pub(super) fn put_u24(out: &mut BytesMut, value: u32) {
    out.put_slice(&value.to_be_bytes()[1..]);
}
