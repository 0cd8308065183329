//! One live stream: its publisher slot, its GOP cache and the fan-out channel its players read.
//!
//! A media message is chunked once, here, into a `Bytes` that every player writes as is: all
//! players share our chunk size and play on message stream 1, so the encoding does not depend
//! on the player. The fan-out channel is a bounded ring (`tokio::sync::broadcast`): the
//! publisher never waits for anyone, and a player that falls a whole ring behind learns it
//! (`Lagged`) and skips to the next keyframe instead of growing a queue.

use crate::config::Config;
use crate::control::ConnControl;
use crate::hls::HlsStream;
use crate::util::lock;
use bytes::{BufMut, Bytes, BytesMut};
use rtmp_proto::chunk::{ChunkWriter, MessageHeader};
use rtmp_proto::flv;
use rtmp_proto::session::{Media, MediaKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;
use tokio::sync::{Notify, broadcast};

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
    /// The message body (an FLV tag body), for the other wire formats.
    pub payload: Bytes,
    /// The message as an FLV tag, built by the first HTTP-FLV viewer that needs it and shared
    /// by every other: streams nobody watches over HTTP never pay for it.
    flv: Arc<OnceLock<Bytes>>,
}

impl Frame {
    /// The message as a complete FLV tag (header, body, previous-tag-size), built once.
    pub fn flv_tag(&self) -> &Bytes {
        self.flv.get_or_init(|| {
            let tag_type = self.kind.type_id();
            let len = self.payload.len().min(0x00FF_FFFF);
            let mut tag = BytesMut::with_capacity(11 + len + 4);
            tag.put_u8(tag_type);
            tag.put_uint(len as u64, 3);
            // The timestamp's low 24 bits, then its high 8 (FLV's "TimestampExtended").
            tag.put_uint(u64::from(self.timestamp & 0x00FF_FFFF), 3);
            tag.put_u8((self.timestamp >> 24) as u8);
            tag.put_uint(0, 3);
            tag.extend_from_slice(self.payload.get(..len).unwrap_or_default());
            tag.put_u32(u32::try_from(11 + len).unwrap_or(u32::MAX));
            tag.freeze()
        })
    }
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

/// The one challenge a stream may have at a time: a newcomer waits for its incumbent to show a
/// sign of life (see [`crate::takeover`]).
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    /// The newcomer's connection id.
    pub(crate) challenger: u64,
    pub(crate) evidence: Arc<ChallengeEvidence>,
    /// After this the challenge is abandoned (its newcomer left without resolving it).
    pub(crate) deadline: Instant,
}

/// Kernel evidence, found by the incumbent's own connection, that the incumbent's host is gone:
/// the newcomer need not wait out the whole challenge.
#[derive(Debug, Default)]
pub struct ChallengeEvidence {
    dead: AtomicBool,
    notify: Notify,
}

impl ChallengeEvidence {
    pub(crate) fn set_dead(&self) {
        self.dead.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Resolves once [`Self::set_dead`] was called.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
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

/// What the publisher's metadata and sequence headers say about its media.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MediaInfo {
    /// Video codec, e.g. "h264".
    pub video_codec: Option<String>,
    /// Audio codec, e.g. "aac".
    pub audio_codec: Option<String>,
    /// Width in pixels (from onMetaData).
    pub width: Option<u32>,
    /// Height in pixels (from onMetaData).
    pub height: Option<u32>,
    /// Frames per second (from onMetaData).
    pub framerate: Option<f64>,
}

impl MediaInfo {
    /// Learns from a metadata message or a sequence header; other messages are not looked at.
    fn learn(&mut self, media: &Media) {
        match media.kind {
            MediaKind::Metadata => {
                let Ok(values) = rtmp_proto::amf0::decode_all(&media.payload) else {
                    return;
                };
                let Some(meta) = values.get(1) else { return };
                let num = |k: &str| meta.get(k).and_then(rtmp_proto::amf0::Value::as_f64);
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let dim = |k: &str| {
                    num(k)
                        .filter(|v| v.is_finite() && *v > 0.0 && *v < 65536.0)
                        .map(|v| v as u32)
                };
                self.width = dim("width").or(self.width);
                self.height = dim("height").or(self.height);
                self.framerate = num("framerate")
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .or(self.framerate);
            }
            MediaKind::Video => {
                if let Some(v) = flv::video_info(&media.payload) {
                    self.video_codec = Some(match (v.fourcc, v.codec_id) {
                        (Some(cc), _) => String::from_utf8_lossy(&cc).into_owned(),
                        (None, 7) => "h264".into(),
                        (None, 12) => "hevc".into(),
                        (None, id) => format!("flv codec {id}"),
                    });
                }
            }
            MediaKind::Audio => {
                if let Some(a) = flv::audio_info(&media.payload) {
                    self.audio_codec = Some(match a.sound_format {
                        10 => "aac".into(),
                        2 => "mp3".into(),
                        11 => "speex".into(),
                        13 => "opus".into(),
                        f => format!("flv format {f}"),
                    });
                }
            }
        }
    }
}

/// A stream as the admin API shows it.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    /// The publisher's connection, if one is live.
    pub publisher: Option<Arc<ConnControl>>,
    /// When the current publisher started.
    pub publishing_since: Option<Instant>,
    /// What is known of the current publisher's media.
    pub media: MediaInfo,
    /// Players attached.
    pub players: usize,
    /// Frames in the GOP cache (headers included).
    pub gop_frames: usize,
    /// Bytes in the GOP cache (headers included).
    pub gop_bytes: usize,
    /// Bytes the HLS segmenter holds, while someone watches over HLS or MP4.
    pub hls_bytes: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct StreamState {
    /// When the current publisher started, and what its media is.
    publishing_since: Option<Instant>,
    media: MediaInfo,
    pub(crate) publisher: Option<PublisherSlot>,
    /// A newcomer challenging the publisher, if any (one at a time).
    pub(crate) challenge: Option<Challenge>,
    pub(crate) players: usize,
    cache: GopCache,
    /// Added to the publisher's timestamps so players see time move forward across publishers.
    ts_offset: u32,
    /// The next frame is the first of a new publisher: rebase its timestamps.
    rebase_pending: bool,
    /// Low-latency HLS, while someone watches over HLS or MP4.
    hls: Option<Arc<HlsStream>>,
    /// The [`HlsUse`]s alive; the last one to go ends `hls`.
    hls_users: usize,
    last_out_ts: Option<u32>,
    /// Events sent on the fan-out channel so far: the sequence number of the next one.
    sent: u64,
    /// Fan-out writers to tell when an event is sent (see [`Watcher`]).
    watchers: Vec<Arc<dyn Watcher>>,
}

/// A fan-out writer serving some of a stream's viewers: told when the stream sends an event,
/// so it takes events off the ring for all of them at once instead of every viewer waking.
pub(crate) trait Watcher: Send + Sync + std::fmt::Debug {
    /// The stream sent an event (called with the stream's lock held: must be cheap).
    fn wake(&self);
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
    hls_config: lifeline_hls::Config,
}

/// A viewer's hold on its stream's HLS state (an HLS session, an MP4 viewer); the last one
/// dropped ends the segmenter and frees its memory.
#[derive(Debug)]
pub(crate) struct HlsUse {
    stream: Arc<Stream>,
    hls: Arc<HlsStream>,
}

impl HlsUse {
    /// The stream's HLS state.
    pub(crate) fn hls(&self) -> &Arc<HlsStream> {
        &self.hls
    }
}

impl Drop for HlsUse {
    fn drop(&mut self) {
        let mut state = self.stream.lock();
        state.hls_users = state.hls_users.saturating_sub(1);
        if state.hls_users == 0 {
            state.hls = None;
        }
    }
}

/// A player's start: what to send first, and the channel for everything after.
pub struct Subscription {
    /// Metadata, sequence headers and the current GOP, in order.
    pub initial: Vec<Frame>,
    /// Whether a publisher is live right now.
    pub live: bool,
    /// Live events from here on, without a gap or a duplicate after `initial`.
    pub rx: broadcast::Receiver<StreamEvent>,
    /// The sequence number of the first event `rx` yields (events are numbered from 0 in the
    /// order the stream sends them), so a fan-out writer knows where this viewer starts.
    pub next_seq: u64,
}

impl Stream {
    pub(crate) fn new(key: String, config: &Config) -> Self {
        let mut writer = ChunkWriter::default();
        writer.set_chunk_size(config.rtmp.chunk_size);
        let (tx, _) = broadcast::channel(config.play.queue_messages);
        Self {
            key,
            tx,
            state: Mutex::new(StreamState {
                publishing_since: None,
                media: MediaInfo::default(),
                publisher: None,
                challenge: None,
                players: 0,
                cache: GopCache::default(),
                ts_offset: 0,
                rebase_pending: false,
                hls: None,
                hls_users: 0,
                last_out_ts: None,
                sent: 0,
                watchers: Vec::new(),
            }),
            writer,
            gop_cache: config.play.gop_cache,
            gop_cache_max_bytes: config.play.gop_cache_max_bytes,
            hls_config: lifeline_hls::Config {
                segment_duration: config.playback.hls_segment_duration,
                part_duration: config.playback.hls_part_duration,
                segment_count: config.playback.hls_segment_count,
                ..lifeline_hls::Config::default()
            },
        }
    }

    /// Starts (or joins) the stream's HLS state. A new segmenter is primed with the cached
    /// start (metadata, sequence headers, the current GOP), so the first playlist is ready
    /// as soon as the GOP reaches a part.
    pub(crate) fn use_hls(self: &Arc<Self>) -> HlsUse {
        let mut state = self.lock();
        state.hls_users += 1;
        let hls = match &state.hls {
            Some(h) => h.clone(),
            None => {
                let h = Arc::new(HlsStream::new(self.hls_config.clone()));
                let cache = &state.cache;
                for f in cache.headers().chain(&cache.gop) {
                    h.push(f.kind, f.timestamp, f.payload.clone());
                }
                state.hls = Some(h.clone());
                h
            }
        };
        HlsUse {
            stream: self.clone(),
            hls,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, StreamState> {
        lock(&self.state)
    }

    /// Starts a new publisher's era: fresh cache, rebased timestamps, players notified.
    pub(crate) fn begin_publisher(&self, state: &mut StreamState, slot: PublisherSlot) {
        state.publisher = Some(slot);
        state.publishing_since = Some(Instant::now());
        state.media = MediaInfo::default();
        state.cache = GopCache::default();
        state.rebase_pending = true;
        if let Some(hls) = &state.hls {
            hls.discontinuity();
        }
        self.send(state, StreamEvent::Published);
    }

    /// Ends the publisher's era; players stay and wait for the next one.
    pub(crate) fn end_publisher(&self, state: &mut StreamState) {
        state.publisher = None;
        state.publishing_since = None;
        state.cache = GopCache::default();
        self.send(state, StreamEvent::Unpublished);
    }

    /// Sends `event` to every viewer: numbered, and every watching writer told.
    fn send(&self, state: &mut StreamState, event: StreamEvent) {
        let _ = self.tx.send(event);
        state.sent += 1;
        for w in &state.watchers {
            w.wake();
        }
    }

    /// A fan-out writer starts watching (until [`Self::unwatch`]).
    pub(crate) fn watch(&self, watcher: Arc<dyn Watcher>) {
        self.lock().watchers.push(watcher);
    }

    /// The writer no longer serves viewers of this stream.
    pub(crate) fn unwatch(&self, watcher: &Arc<dyn Watcher>) {
        self.lock().watchers.retain(|w| !Arc::ptr_eq(w, watcher));
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
        if sequence_header
            || media.kind == MediaKind::Metadata
            || state.media == MediaInfo::default()
        {
            state.media.learn(&media);
        }
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
            payload: media.payload,
            flv: Arc::default(),
        };
        self.cache(&mut state.cache, &frame);
        if let Some(hls) = &state.hls {
            hls.push(frame.kind, frame.timestamp, frame.payload.clone());
        }
        self.send(&mut state, StreamEvent::Frame(frame));
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
            next_seq: state.sent,
        }
    }

    /// The current metadata and sequence headers, for a player resuming after a skip.
    pub fn headers(&self) -> Vec<Frame> {
        self.lock().cache.headers().cloned().collect()
    }

    /// The stream as the admin API shows it.
    pub fn snapshot(&self) -> StreamSnapshot {
        let state = self.lock();
        let cache = &state.cache;
        let headers: Vec<&Frame> = cache.headers().collect();
        StreamSnapshot {
            publisher: state.publisher.as_ref().map(|p| p.control.clone()),
            publishing_since: state.publishing_since,
            media: state.media.clone(),
            players: state.players,
            gop_frames: headers.len() + cache.gop.len(),
            gop_bytes: headers.iter().map(|f| f.chunks.len()).sum::<usize>() + cache.gop_bytes,
            hls_bytes: state.hls.as_ref().map(|h| h.memory()),
        }
    }

    /// Number of players attached.
    pub fn player_count(&self) -> usize {
        self.lock().players
    }
}
