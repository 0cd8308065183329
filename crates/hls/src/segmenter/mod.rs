//! The segmenter: the one type the server talks to. Feed it every media message of a stream
//! with [`push`](Segmenter::push); serve what [`lookup`](Segmenter::lookup) and the playlist
//! renderers return; wake parked requests when a push reports new parts.

mod ingest;
mod runs;

use crate::codec::{AudioConfig, VideoConfig};
use crate::config::Config;
use crate::error::{PushError, UnsupportedCodec};
use crate::mux::Fragmenter;
use crate::names::{Resource, UriTemplate};
use crate::playlist::{VariantInfo, View, render_media, render_multivariant};
use crate::reload::{Directives, Reload, decide};
use crate::store::{NextPart, Store};
use crate::timeline::{AudioClock, Timeline};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

/// How long audio is held, before the first video keyframe, to be muxed with it; also how
/// long audio must flow without any video configuration before the stream is taken as
/// audio-only.
const START_WAIT_MS: u64 = 1000;
/// Excess over whole seconds that does not raise the target duration: millisecond
/// timestamps make a 2 s GOP measure 2.001 s now and then, and RFC 8216bis only asks that
/// durations *rounded to the nearest second* stay within the target.
const TARGET_SLACK: Duration = Duration::from_millis(10);

/// The kind of an RTMP media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Message type 8.
    Audio,
    /// Message type 9.
    Video,
    /// Message type 18 (`onMetaData`); not needed and ignored.
    Metadata,
}

/// What one [`push`](Segmenter::push) published. When `parts > 0`, requests parked on a
/// [`Reload::Wait`] or a [`Lookup::Pending`] should be decided again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// Parts published.
    pub parts: u32,
    /// Segments completed.
    pub segments: u32,
    /// A new init segment was made (a new `EXT-X-MAP` follows).
    pub init: bool,
}

/// A resource by name, for the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Here it is.
    Ready(Bytes),
    /// The preload hint or the segment being built: hold the request until an update, then
    /// look again.
    Pending,
    /// Unknown, aged out, or never coming (404).
    NotFound,
}

/// Where a stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No playlist yet: waiting for sequence headers, a keyframe, or the first segment.
    Starting,
    /// Playlists can be rendered.
    Live,
    /// A codec cannot be packaged; answer HLS requests 415 with this as the reason.
    Unsupported(UnsupportedCodec),
    /// [`Segmenter::end`] was called.
    Ended,
}

/// Tracks of the current init segment and the fragmenter cutting them.
#[derive(Debug)]
struct Run {
    init: u64,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    frag: Fragmenter,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames dropped: before a configuration or keyframe, or while a codec is unsupported.
    pub dropped_frames: u64,
    /// Messages refused as malformed.
    pub malformed: u64,
    /// Parts published so far.
    pub parts: u64,
    /// Segments completed so far.
    pub segments: u64,
    /// Init segments made so far.
    pub inits: u64,
}

/// Low-latency HLS for one stream (see the crate docs).
#[derive(Debug)]
pub struct Segmenter {
    config: Config,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    unsupported: Option<UnsupportedCodec>,
    timeline: Timeline,
    audio_clock: AudioClock,
    run: Option<Run>,
    /// Frames waiting for the run to start.
    held: VecDeque<runs::Held>,
    held_bytes: usize,
    /// The next segment follows a change of encoding or publisher.
    discontinuity: bool,
    store: Store,
    next_init: u64,
    sequence: u32,
    /// (output ms, Unix ms) of the last [`Segmenter::set_wallclock`].
    wallclock: Option<(u64, u64)>,
    last_ms: u64,
    /// What the newest init segment holds, for the multivariant playlist.
    variant: Option<VariantInfo>,
    ended: bool,
    stats: Stats,
}

impl Segmenter {
    /// A segmenter with `config` (normalized, see [`Config::normalized`]).
    pub fn new(config: Config) -> Self {
        let config = config.normalized();
        Self {
            store: Store::new(config.segment_count),
            config,
            video: None,
            audio: None,
            unsupported: None,
            timeline: Timeline::default(),
            audio_clock: AudioClock::default(),
            run: None,
            held: VecDeque::new(),
            held_bytes: 0,
            discontinuity: false,
            next_init: 0,
            sequence: 0,
            wallclock: None,
            last_ms: 0,
            variant: None,
            ended: false,
            stats: Stats::default(),
        }
    }

    /// Feeds one media message: `timestamp` is the RTMP timestamp (ms, the decode time) and
    /// `payload` the FLV tag body (zero-copy: frames are slices of it). An error means the
    /// message was not used; the segmenter carries on either way. A first
    /// [`PushError::Unsupported`] also closes the segment in progress, so wake parked requests
    /// on it too: they will find [`Status::Unsupported`].
    pub fn push(
        &mut self,
        kind: FrameKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<Update, PushError> {
        if self.ended {
            return Err(PushError::Ended);
        }
        let before = self.stats;
        let result = match kind {
            FrameKind::Video => self.video_message(timestamp, &payload),
            FrameKind::Audio => self.audio_message(timestamp, &payload),
            FrameKind::Metadata => Ok(()),
        };
        if matches!(result, Err(PushError::Malformed(_))) {
            self.stats.malformed += 1;
        }
        result.map(|()| self.update_since(before))
    }

    /// The publisher changed (call before the new one's first message): the segment in
    /// progress is closed, and the next starts with `EXT-X-DISCONTINUITY`, a new init segment
    /// once the new sequence headers are in, and a new time base continuing the old one.
    pub fn discontinuity(&mut self) -> Update {
        let before = self.stats;
        self.close_run();
        self.video = None;
        self.audio = None;
        self.unsupported = None;
        self.clear_held();
        self.timeline.restart();
        self.update_since(before)
    }

    /// The stream is over: the last segment is closed and playlists get `EXT-X-ENDLIST`.
    /// Later pushes are refused with [`PushError::Ended`].
    pub fn end(&mut self) -> Update {
        let before = self.stats;
        self.close_run();
        self.clear_held();
        self.ended = true;
        self.update_since(before)
    }

    /// Ties the newest pushed media time to a wall-clock time (ms since the Unix epoch), for
    /// `EXT-X-PROGRAM-DATE-TIME` on the segments that start from now on.
    pub fn set_wallclock(&mut self, unix_ms: u64) {
        self.wallclock = Some((self.last_ms, unix_ms));
    }

    /// Where the stream stands.
    pub fn status(&self) -> Status {
        if let Some(u) = &self.unsupported {
            Status::Unsupported(u.clone())
        } else if self.ended {
            Status::Ended
        } else if self.view().renderable() {
            Status::Live
        } else {
            Status::Starting
        }
    }

    /// The media playlist, URIs written with `uris`; `None` until the first segment is
    /// complete (or while the stream is unsupported).
    pub fn media_playlist(&self, uris: &UriTemplate, program_date_time: bool) -> Option<String> {
        let view = self.view();
        (view.renderable() && self.unsupported.is_none())
            .then(|| render_media(&view, uris, program_date_time))
    }

    /// A multivariant playlist with one variant at `media_uri`; `None` like
    /// [`media_playlist`](Self::media_playlist).
    pub fn multivariant_playlist(&self, media_uri: &str) -> Option<String> {
        if self.unsupported.is_some() {
            return None;
        }
        render_multivariant(&self.view(), self.variant.as_ref()?, media_uri)
    }

    /// Whether a playlist request with these delivery directives can be answered now. (For
    /// an unsupported stream this says `Ready`: check [`status`](Self::status) first.)
    pub fn reload(&self, directives: Directives) -> Reload {
        if self.unsupported.is_some() {
            return Reload::Ready;
        }
        decide(&self.view(), directives)
    }

    /// How long a parked playlist request may wait before a 503: three target durations.
    pub fn blocking_timeout(&self) -> Duration {
        Duration::from_secs(self.target_duration().saturating_mul(3))
    }

    /// An init segment, segment or part by name (`init-0.mp4`, `seg-4.m4s`, `part-4.2.m4s`).
    pub fn lookup(&self, name: &str) -> Lookup {
        let Some(resource) = Resource::parse(name) else {
            return Lookup::NotFound;
        };
        if let Some(bytes) = self.store.get(resource) {
            return Lookup::Ready(bytes);
        }
        if self.ended || self.run.is_none() {
            return Lookup::NotFound;
        }
        let (msn, index) = self.store.next_part();
        match resource {
            Resource::Part(m, i) if (m, i) == (msn, index) => Lookup::Pending,
            Resource::Segment(m) if self.store.open.as_ref().is_some_and(|o| o.msn == m) => {
                Lookup::Pending
            }
            _ => Lookup::NotFound,
        }
    }

    /// `EXT-X-TARGETDURATION`: the configured segment duration or the longest segment so
    /// far, in whole seconds, whichever is more. It never goes down.
    pub fn target_duration(&self) -> u64 {
        let ceil = |d: Duration| d.as_nanos().div_ceil(1_000_000_000);
        let longest = ceil(self.store.longest.saturating_sub(TARGET_SLACK));
        let wanted = ceil(self.config.segment_duration).max(longest).max(1);
        u64::try_from(wanted).unwrap_or(u64::MAX)
    }

    /// The part to send after `after` to a reader that takes every part in order (a
    /// fragmented-MP4 stream for Media Source Extensions): see [`NextPart`]. `None`, or a
    /// part that aged out, gives the newest part that starts with a keyframe.
    pub fn part_after(&self, after: Option<(u64, u32)>) -> NextPart {
        self.store.part_after(after)
    }

    /// The newest published part: (media sequence number, part index).
    pub fn last_part(&self) -> Option<(u64, u32)> {
        self.store.last_part()
    }

    /// RFC 6381 codecs of the current tracks, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> Option<String> {
        self.variant.as_ref().map(|v| v.codecs.clone())
    }

    /// The newest video sequence header, parsed (size, codecs string, record).
    pub fn video_config(&self) -> Option<&VideoConfig> {
        self.video.as_ref()
    }

    /// The newest audio sequence header, parsed (rate, channels, codecs string).
    pub fn audio_config(&self) -> Option<&AudioConfig> {
        self.audio.as_ref()
    }

    /// Bytes held for this stream: kept segments, parts, inits and queued samples.
    pub fn memory(&self) -> usize {
        self.store.held() + self.held_bytes + self.run.as_ref().map_or(0, |r| r.frag.held())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The kept segments, for tests.
    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    fn view(&self) -> View<'_> {
        View {
            store: &self.store,
            target: self.target_duration(),
            part_target: self.config.part_duration,
            hint: self.run.as_ref().map(|_| self.store.next_part()),
            ended: self.ended,
        }
    }

    fn update_since(&self, before: Stats) -> Update {
        let n = |a: u64, b: u64| u32::try_from(a - b).unwrap_or(u32::MAX);
        Update {
            parts: n(self.stats.parts, before.parts),
            segments: n(self.stats.segments, before.segments),
            init: self.stats.inits > before.inits,
        }
    }
}
