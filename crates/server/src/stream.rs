//! One live stream: its publisher slot, its GOP cache and the fan-out channel its players read.
//!
//! A media message is chunked once, here, into a `Bytes` that every player writes as is: all
//! players share our chunk size and play on message stream 1, so the encoding does not depend
//! on the player. The fan-out channel is a bounded ring (`tokio::sync::broadcast`): the
//! publisher never waits for anyone, and a player that falls a whole ring behind learns it
//! (`Lagged`) and skips to the next keyframe instead of growing a queue.

use crate::conn::ConnControl;
use bytes::{Bytes, BytesMut};
use rtmp_proto::chunk::{ChunkWriter, MessageHeader};
use rtmp_proto::flv;
use rtmp_proto::session::{Media, MediaKind};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// The message stream id players receive media on (the first `createStream` answer).
pub const PLAY_STREAM_ID: u32 = 1;

/// A media message ready for every player.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Audio, video or metadata.
    pub kind: MediaKind,
    /// Timestamp as sent to players (continuous across publishers).
    pub timestamp: u32,
    /// A video keyframe: a player can start here.
    pub keyframe: bool,
    /// A codec sequence header (decoder configuration).
    pub sequence_header: bool,
    /// The message chunked for [`PLAY_STREAM_ID`], shared by all players.
    pub chunks: Bytes,
}

/// What travels on a stream's fan-out channel.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// A media message.
    Frame(Frame),
    /// A (new) publisher started: players get `NetStream.Play.PublishNotify`.
    Published,
    /// The publisher left: players get `NetStream.Play.UnpublishNotify`.
    Unpublished,
}

/// The publisher currently holding a stream name.
#[derive(Debug, Clone)]
pub(crate) struct PublisherSlot {
    pub(crate) control: Arc<ConnControl>,
}

/// What a new player needs before live frames: metadata, sequence headers, the current GOP.
#[derive(Debug, Default, Clone)]
struct GopCache {
    metadata: Option<Frame>,
    video_header: Option<Frame>,
    audio_header: Option<Frame>,
    gop: Vec<Frame>,
    gop_bytes: usize,
    /// The GOP outgrew its limit: nothing is cached until the next keyframe.
    overflowed: bool,
}

impl GopCache {
    fn headers(&self) -> impl Iterator<Item = &Frame> {
        self.metadata
            .iter()
            .chain(&self.video_header)
            .chain(&self.audio_header)
    }
}

#[derive(Debug)]
pub(crate) struct StreamState {
    pub(crate) publisher: Option<PublisherSlot>,
    /// A newcomer challenging the publisher, if any (one at a time).
    pub(crate) challenge: Option<crate::registry::Challenge>,
    pub(crate) players: usize,
    cache: GopCache,
    /// Added to the publisher's timestamps so players see time move forward across publishers.
    ts_offset: u32,
    /// The next frame is the first of a new publisher: rebase its timestamps.
    rebase_pending: bool,
    last_out_ts: Option<u32>,
}

/// A live stream, keyed by app and name in the registry.
#[derive(Debug)]
pub struct Stream {
    /// `app/name`.
    pub key: String,
    tx: broadcast::Sender<StreamEvent>,
    state: Mutex<StreamState>,
    writer: ChunkWriter,
    gop_cache: bool,
    gop_cache_max_bytes: usize,
}

/// A player's start: what to send first, and the channel for everything after.
pub struct Subscription {
    /// Metadata, sequence headers and the current GOP, in order.
    pub initial: Vec<Frame>,
    /// Whether a publisher is live right now.
    pub live: bool,
    /// Live events from here on, without a gap or a duplicate after `initial`.
    pub rx: broadcast::Receiver<StreamEvent>,
}

impl Stream {
    pub(crate) fn new(key: String, config: &crate::config::Config) -> Self {
        let mut writer = ChunkWriter::default();
        writer.set_chunk_size(config.rtmp.chunk_size);
        let (tx, _) = broadcast::channel(config.play.queue_messages);
        Self {
            key,
            tx,
            state: Mutex::new(StreamState {
                publisher: None,
                challenge: None,
                players: 0,
                cache: GopCache::default(),
                ts_offset: 0,
                rebase_pending: false,
                last_out_ts: None,
            }),
            writer,
            gop_cache: config.play.gop_cache,
            gop_cache_max_bytes: config.play.gop_cache_max_bytes,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A poisoned lock means a panic elsewhere while holding it; the state is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a new publisher's era: fresh cache, rebased timestamps, players notified.
    pub(crate) fn begin_publisher(&self, state: &mut StreamState, slot: PublisherSlot) {
        state.publisher = Some(slot);
        state.cache = GopCache::default();
        state.rebase_pending = true;
        let _ = self.tx.send(StreamEvent::Published);
    }

    /// Ends the publisher's era; players stay and wait for the next one.
    pub(crate) fn end_publisher(&self, state: &mut StreamState) {
        state.publisher = None;
        state.cache = GopCache::default();
        let _ = self.tx.send(StreamEvent::Unpublished);
    }

    /// Chunks `media` once, caches it as needed and sends it to every player. Only the
    /// current publisher's connection may call this (checked by `conn_id`).
    pub fn publish(&self, conn_id: u64, media: Media) {
        let mut state = self.lock();
        if state.publisher.as_ref().map(|p| p.control.id) != Some(conn_id) {
            return;
        }
        if state.rebase_pending {
            state.rebase_pending = false;
            state.ts_offset = match state.last_out_ts {
                // Continue a little after the previous publisher's last frame.
                Some(last) => last.wrapping_add(40).wrapping_sub(media.timestamp),
                None => 0,
            };
        }
        let timestamp = media.timestamp.wrapping_add(state.ts_offset);
        state.last_out_ts = Some(timestamp);
        let (keyframe, sequence_header) = match media.kind {
            MediaKind::Video => flv::video_info(&media.payload).map_or((false, false), |v| {
                (v.keyframe && !v.sequence_header, v.sequence_header)
            }),
            MediaKind::Audio => (
                false,
                flv::audio_info(&media.payload).is_some_and(|a| a.sequence_header),
            ),
            MediaKind::Metadata => (false, false),
        };
        let header = MessageHeader {
            csid: media.kind.csid(),
            timestamp,
            type_id: media.kind.type_id(),
            stream_id: PLAY_STREAM_ID,
        };
        let mut buf = BytesMut::with_capacity(media.payload.len() + 64);
        self.writer.write(&header, &media.payload, &mut buf);
        let frame = Frame {
            kind: media.kind,
            timestamp,
            keyframe,
            sequence_header,
            chunks: buf.freeze(),
        };
        self.cache(&mut state.cache, &frame);
        let _ = self.tx.send(StreamEvent::Frame(frame));
    }

    fn cache(&self, cache: &mut GopCache, frame: &Frame) {
        match (frame.kind, frame.sequence_header) {
            (MediaKind::Metadata, _) => return cache.metadata = Some(frame.clone()),
            (MediaKind::Video, true) => return cache.video_header = Some(frame.clone()),
            (MediaKind::Audio, true) => return cache.audio_header = Some(frame.clone()),
            _ => {}
        }
        if !self.gop_cache {
            return;
        }
        if frame.keyframe {
            cache.gop.clear();
            cache.gop_bytes = 0;
            cache.overflowed = false;
        } else if cache.overflowed || (cache.gop.is_empty() && frame.kind == MediaKind::Video) {
            // Nothing to attach an inter frame to until the next keyframe.
            return;
        }
        cache.gop_bytes += frame.chunks.len();
        if cache.gop_bytes > self.gop_cache_max_bytes {
            cache.gop.clear();
            cache.gop_bytes = 0;
            cache.overflowed = true;
            return;
        }
        cache.gop.push(frame.clone());
    }

    /// Subscribes a player: the cached start and a receiver that continues exactly after it.
    pub(crate) fn subscribe(&self, state: &StreamState) -> Subscription {
        let mut initial: Vec<Frame> = state.cache.headers().cloned().collect();
        initial.extend(state.cache.gop.iter().cloned());
        Subscription {
            initial,
            live: state.publisher.is_some(),
            rx: self.tx.subscribe(),
        }
    }

    /// The current metadata and sequence headers, for a player resuming after a skip.
    pub fn headers(&self) -> Vec<Frame> {
        self.lock().cache.headers().cloned().collect()
    }

    /// Number of players attached.
    pub fn player_count(&self) -> usize {
        self.lock().players
    }
}
