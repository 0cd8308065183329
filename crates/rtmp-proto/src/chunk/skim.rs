//! Reading a chunk stream while passing over the bodies nobody will look at.
//!
//! A load generator's player counts media messages (type, timestamp, length) but never decodes
//! them; reassembling every body into a `Bytes` would make thousands of players on one thread
//! cost more than the server they measure. [`ChunkReader::skim`] walks the same chunk headers
//! with the same state and limits as [`ChunkReader::read`], over a borrowed slice, and consumes
//! a skimmed message's payload bytes wherever they lie, so a read that ends mid-payload leaves
//! nothing to carry over.

use super::reader::{Chunk, header_of};
use super::{ChunkError, ChunkReader, MessageHeader, RawMessage};
use bytes::Bytes;

/// A complete message from [`ChunkReader::skim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skimmed {
    /// A message of a type that is read whole.
    Message(RawMessage),
    /// A message of a skimmed type: its header and length; the body was passed over.
    Skipped {
        /// Where and when.
        header: MessageHeader,
        /// Body length in bytes.
        len: u32,
    },
}

impl ChunkReader {
    /// Like [`Self::read`], over a borrowed slice, except that the bodies of messages whose type
    /// id `skip` selects are passed over as they arrive instead of being reassembled.
    ///
    /// Returns how many bytes of `data` were consumed and the message they completed, if any;
    /// call again on the rest. When fewer bytes than offered are consumed and no message is
    /// returned, the front of the rest is an incomplete chunk header (or an incomplete chunk of
    /// a message read whole): keep it and offer it again with more bytes after it. Bodies read
    /// whole are copied out of `data`; they are the small ones (commands, control, metadata).
    ///
    /// A reader is driven by `read` or by `skim` for its whole life, never by both.
    pub fn skim(
        &mut self,
        data: &[u8],
        skip: impl Fn(u8) -> bool,
    ) -> Result<(usize, Option<Skimmed>), ChunkError> {
        let mut used = 0;
        loop {
            let rest = data.get(used..).unwrap_or_default();
            if let Some((slot, left)) = self.skimming {
                let n = u32::try_from(rest.len()).unwrap_or(u32::MAX).min(left);
                used += n as usize;
                let Some((csid, state)) = self.streams.get_mut(slot) else {
                    // The slot came from `begin`, and slots are never removed.
                    self.skimming = None;
                    continue;
                };
                let csid = *csid;
                state.skipped = state.skipped.saturating_add(n);
                if n < left {
                    self.skimming = Some((slot, left - n));
                    return Ok((used, None));
                }
                self.skimming = None;
                if state.skipped >= state.length {
                    state.in_progress = false;
                    state.skipped = 0;
                    let skipped = Skimmed::Skipped {
                        header: header_of(csid, state),
                        len: state.length,
                    };
                    return Ok((used, Some(skipped)));
                }
                continue;
            }
            let Some(chunk) = self.parse_header(rest)? else {
                return Ok((used, None));
            };
            if skip(chunk.type_id) {
                let slot = self.begin(&chunk);
                used += chunk.header_len;
                let here = rest.len().saturating_sub(chunk.header_len);
                let n = chunk.payload_len.min(here);
                used += n;
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                let left = u32::try_from(chunk.payload_len).unwrap_or(u32::MAX) - n;
                let Some((_, state)) = self.streams.get_mut(slot) else {
                    // `begin` returns a slot it just checked or filled.
                    continue;
                };
                state.in_progress = true;
                state.skipped = state.skipped.saturating_add(n);
                if left > 0 {
                    // The rest of this chunk's payload comes with the next input.
                    self.skimming = Some((slot, left));
                    return Ok((used, None));
                }
                if state.skipped >= state.length {
                    state.in_progress = false;
                    state.skipped = 0;
                    let skipped = Skimmed::Skipped {
                        header: header_of(chunk.csid, state),
                        len: state.length,
                    };
                    return Ok((used, Some(skipped)));
                }
                continue;
            }
            self.check_held(&chunk)?;
            let end = chunk.header_len.saturating_add(chunk.payload_len);
            let Some(payload) = rest.get(chunk.header_len..end) else {
                return Ok((used, None));
            };
            used += end;
            if let Some(message) = self.apply_copied(&chunk, payload) {
                return Ok((used, Some(Skimmed::Message(message))));
            }
        }
    }

    /// [`Self::read`]'s `apply` for a chunk read whole out of a borrowed slice.
    fn apply_copied(&mut self, chunk: &Chunk, payload: &[u8]) -> Option<RawMessage> {
        let slot = self.begin(chunk);
        let (_, state) = self.streams.get_mut(slot)?;
        if chunk.starts() && usize::try_from(state.length).ok() == Some(payload.len()) {
            return Some(RawMessage {
                header: header_of(chunk.csid, state),
                payload: Bytes::copy_from_slice(payload),
            });
        }
        state.partial.extend_from_slice(payload);
        state.in_progress = true;
        self.buffered = self.buffered.saturating_add(payload.len());
        if usize::try_from(state.length).ok() != Some(state.partial.len()) {
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
}
