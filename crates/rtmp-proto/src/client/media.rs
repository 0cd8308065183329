//! Media both ways: what a player receives (audio, video, metadata, aggregates) and what a
//! publisher sends.

use super::{ClientError, ClientEvent, ClientSession, Goal, MediaHeader, MediaMode, Phase, Stream};
use crate::amf0::{self, Value};
use crate::chunk::{MessageHeader, RawMessage};
use crate::message::{Message, type_id};
use crate::session::{Media, MediaKind};
use bytes::{Bytes, BytesMut};
use std::time::Instant;

/// Bytes of an FLV tag header and of the previous-tag-size trailer, inside aggregates.
const TAG_HEADER: usize = 11;
const TAG_TRAILER: usize = 4;

impl ClientSession {
    fn playing(&self) -> bool {
        matches!(
            self.stream,
            Stream::Starting(_, Goal::Play) | Stream::Active(_, Goal::Play)
        )
    }

    /// Media counts as a sign of life for the idle deadline, and as the stream (re)starting
    /// for `StreamEnded`. Servers send media on the played stream's id, but not all of them on
    /// exactly that id, so any media while playing is taken.
    fn media_arrived(&mut self, now: Instant) -> bool {
        if !self.playing() || matches!(self.phase, Phase::Refused) {
            return false;
        }
        self.ended = false;
        if matches!(self.stream, Stream::Active(..)) {
            self.arm_media_idle(now);
        }
        true
    }

    pub(super) fn on_media(
        &mut self,
        now: Instant,
        kind: MediaKind,
        raw: &RawMessage,
        payload: Bytes,
    ) {
        if self.media_arrived(now) {
            self.push_media(kind, raw.header.timestamp, payload);
        }
    }

    pub(super) fn on_media_header(&mut self, now: Instant, header: MediaHeader) {
        if self.media_arrived(now) {
            self.events.push_back(ClientEvent::MediaHeader(header));
        }
    }

    fn push_media(&mut self, kind: MediaKind, timestamp: u32, payload: Bytes) {
        let event = match self.config.media {
            MediaMode::Full => ClientEvent::Media(Media {
                kind,
                timestamp,
                payload,
            }),
            MediaMode::HeadersOnly => ClientEvent::MediaHeader(MediaHeader {
                kind,
                timestamp,
                len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            }),
        };
        self.events.push_back(event);
    }

    /// `onMetaData`, with or without the `@setDataFrame` wrapper publishers use, goes to the
    /// driver as `onMetaData, {…}` (the form players expect); other data is dropped.
    pub(super) fn on_data(&mut self, now: Instant, raw: &RawMessage, values: Vec<Value>) {
        if !self.playing() {
            return;
        }
        let values = match values.first().and_then(Value::as_str) {
            Some("@setDataFrame") => values.into_iter().skip(1).collect(),
            Some("onMetaData") => values,
            _ => return,
        };
        if values.first().and_then(Value::as_str) != Some("onMetaData") {
            return;
        }
        self.media_arrived(now);
        let (_, payload) = Message::Data(values).encode();
        self.events.push_back(ClientEvent::Media(Media {
            kind: MediaKind::Metadata,
            timestamp: raw.header.timestamp,
            payload,
        }));
    }

    /// An aggregate holds FLV tags back to back; each audio or video tag becomes one media
    /// event, its timestamp moved by the aggregate's (RTMP 1.0 §7.1.6). A truncated tag ends
    /// the walk: what came before it is still delivered.
    pub(super) fn on_aggregate(&mut self, now: Instant, raw: &RawMessage, body: &Bytes) {
        if !self.media_arrived(now) {
            return;
        }
        let mut pos = 0;
        let mut first_ts = None;
        while let Some(h) = body.get(pos..pos + TAG_HEADER) {
            let size = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
            let tag_ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
            let start = pos + TAG_HEADER;
            let Some(data) = body.get(start..start + size) else {
                return;
            };
            let base = *first_ts.get_or_insert(tag_ts);
            let timestamp = raw.header.timestamp.wrapping_add(tag_ts.wrapping_sub(base));
            let kind = match h[0] & 0x1f {
                type_id::AUDIO => Some(MediaKind::Audio),
                type_id::VIDEO => Some(MediaKind::Video),
                _ => None,
            };
            if let Some(kind) = kind {
                self.push_media(kind, timestamp, body.slice_ref(data));
            }
            pos = start + size + TAG_TRAILER;
        }
    }

    /// Sends one media message: audio or video as an FLV tag body, or metadata as the AMF0
    /// body `onMetaData, {…}` (an FLV script tag's body), which goes out wrapped in
    /// `@setDataFrame` as servers expect from publishers. Chunked at our chunk size.
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        if matches!(self.phase, Phase::Refused) {
            return Err(ClientError::Refused);
        }
        let Stream::Active(stream_id, Goal::Publish) = self.stream else {
            return Err(ClientError::NotPublishing);
        };
        let header = MessageHeader {
            csid: kind.csid(),
            timestamp,
            type_id: kind.type_id(),
            stream_id,
        };
        if kind == MediaKind::Metadata {
            let mut body = BytesMut::with_capacity(16 + payload.len());
            amf0::encode(&Value::string("@setDataFrame"), &mut body);
            body.extend_from_slice(payload);
            self.writer.write(&header, &body, &mut self.out);
        } else {
            self.writer.write(&header, payload, &mut self.out);
        }
        Ok(())
    }

    /// Sends `metadata` (conventionally an ECMA array of `width`, `height`, codecs, …) as
    /// `@setDataFrame, onMetaData, metadata`.
    pub fn send_metadata(&mut self, timestamp: u32, metadata: &Value) -> Result<(), ClientError> {
        let (_, body) = Message::on_metadata(metadata.clone()).encode();
        self.send_media(MediaKind::Metadata, timestamp, &body)
    }
}
