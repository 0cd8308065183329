//! The segmenter: the one type the server talks to. Feed it every media message of a stream
//! with [`push`](Segmenter::push); serve what [`lookup`](Segmenter::lookup) and the playlist
//! renderers return; wake parked requests when a push reports new parts.

use crate::codec::{AudioConfig, VideoConfig};
use crate::config::Config;
use crate::error::{PushError, Track, UnsupportedCodec};
use crate::flv::{AudioTag, VideoTag, parse_audio, parse_video};
use crate::mp4::{AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID, init_segment};
use crate::mux::{Fragmenter, Limits, Out, Queue, Sample};
use crate::names::{Resource, UriTemplate};
use crate::playlist::{VariantInfo, View, render_media, render_multivariant};
use crate::reload::{Directives, Reload, decide};
use crate::store::{Part, Store};
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
    /// Audio waiting for the run to start: (output ms, frame).
    held: VecDeque<(u64, Bytes)>,
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
    /// `payload` the FLV tag body. An error means the message was not used; the segmenter
    /// carries on either way.
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

    /// Whether a playlist request with these delivery directives can be answered now.
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

    /// The newest published part: (media sequence number, part index).
    pub fn last_part(&self) -> Option<(u64, u32)> {
        self.store.last_part()
    }

    /// RFC 6381 codecs of the current tracks, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> Option<String> {
        self.variant.as_ref().map(|v| v.codecs.clone())
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

    fn set_unsupported(&mut self, u: &UnsupportedCodec) {
        if self.unsupported.as_ref() != Some(u) {
            self.close_run();
            self.clear_held();
            self.unsupported = Some(u.clone());
        }
    }

    fn video_message(&mut self, timestamp: u32, body: &Bytes) -> Result<(), PushError> {
        let tag = match parse_video(body) {
            Err(PushError::Unsupported(u)) => {
                self.set_unsupported(&u);
                return Err(u.into());
            }
            other => other?,
        };
        match tag {
            VideoTag::Skip => {}
            VideoTag::Config(cfg) => {
                if self
                    .unsupported
                    .as_ref()
                    .is_some_and(|u| u.track == Track::Video)
                {
                    self.unsupported = None;
                }
                if self.video.as_ref() != Some(&cfg) {
                    let stale = self
                        .run
                        .as_ref()
                        .is_some_and(|r| r.video.as_ref() != Some(&cfg));
                    self.video = Some(cfg);
                    if stale {
                        self.close_run();
                    }
                }
            }
            VideoTag::Frame {
                keyframe,
                cts,
                data,
            } => {
                let ms = self.map_time(Track::Video, timestamp);
                if self.unsupported.is_some() || self.video.is_none() {
                    self.stats.dropped_frames += 1;
                    return Ok(());
                }
                if self.run.is_none() {
                    if !keyframe {
                        self.stats.dropped_frames += 1;
                        return Ok(());
                    }
                    self.start_run(true, ms);
                }
                let sample = Sample {
                    dts: ms.saturating_mul(u64::from(VIDEO_TIMESCALE / 1000)),
                    cts: i32::try_from(i64::from(cts) * 90).unwrap_or(if cts < 0 {
                        i32::MIN
                    } else {
                        i32::MAX
                    }),
                    keyframe,
                    data,
                };
                let mut out = Vec::new();
                match self.run.as_mut() {
                    Some(run) if run.video.is_some() => run.frag.push_primary(sample, &mut out),
                    _ => self.stats.dropped_frames += 1,
                }
                self.apply(out);
            }
        }
        Ok(())
    }

    fn audio_message(&mut self, timestamp: u32, body: &Bytes) -> Result<(), PushError> {
        let tag = match parse_audio(body) {
            Err(PushError::Unsupported(u)) => {
                if !self.config.drop_unsupported_audio {
                    self.set_unsupported(&u);
                }
                return Err(u.into());
            }
            other => other?,
        };
        match tag {
            AudioTag::Skip => {}
            AudioTag::Config(cfg) => {
                if self
                    .unsupported
                    .as_ref()
                    .is_some_and(|u| u.track == Track::Audio)
                {
                    self.unsupported = None;
                }
                if self.audio.as_ref() != Some(&cfg) {
                    let stale = self
                        .run
                        .as_ref()
                        .is_some_and(|r| r.audio.as_ref() != Some(&cfg));
                    self.audio = Some(cfg);
                    if stale {
                        self.close_run();
                    }
                }
            }
            AudioTag::Frame(data) => {
                let ms = self.map_time(Track::Audio, timestamp);
                if self.unsupported.is_some() || self.audio.is_none() {
                    self.stats.dropped_frames += 1;
                    return Ok(());
                }
                if self.run.is_none() {
                    self.hold(ms, data);
                    return Ok(());
                }
                self.mux_audio(ms, data);
            }
        }
        Ok(())
    }

    fn map_time(&mut self, track: Track, timestamp: u32) -> u64 {
        let ms = self.timeline.map(track, timestamp);
        self.last_ms = self.last_ms.max(ms);
        ms
    }

    /// Audio before the run starts: kept for [`START_WAIT_MS`] so it can join the first
    /// video keyframe, or start an audio-only run if no video configuration shows up.
    fn hold(&mut self, ms: u64, data: Bytes) {
        self.held_bytes += data.len();
        self.held.push_back((ms, data));
        let first = self.held.front().map_or(ms, |(t, _)| *t);
        if self.video.is_none() && ms.saturating_sub(first) >= START_WAIT_MS {
            self.start_run(false, first);
            return;
        }
        while let Some((t, d)) = self.held.front() {
            let stale = ms.saturating_sub(*t) > START_WAIT_MS
                || self.held_bytes > self.config.max_part_bytes;
            if !stale {
                break;
            }
            self.held_bytes -= d.len();
            self.held.pop_front();
            self.stats.dropped_frames += 1;
        }
    }

    fn clear_held(&mut self) {
        self.stats.dropped_frames += self.held.len() as u64;
        self.held.clear();
        self.held_bytes = 0;
    }

    fn mux_audio(&mut self, ms: u64, data: Bytes) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let Some(cfg) = run.audio.as_ref() else {
            self.stats.dropped_frames += 1;
            return;
        };
        let dts = self
            .audio_clock
            .ticks(ms, cfg.sample_rate, cfg.samples_in(&data));
        let sample = Sample {
            dts,
            cts: 0,
            keyframe: true,
            data,
        };
        let mut out = Vec::new();
        if run.video.is_some() {
            run.frag.push_secondary(sample);
        } else {
            run.frag.push_primary(sample, &mut out);
        }
        self.apply(out);
    }

    /// Starts a run (a new init segment) at output time `start_ms`: with video when a video
    /// keyframe starts it, else audio-only. Held audio from `start_ms` on joins it.
    fn start_run(&mut self, with_video: bool, start_ms: u64) {
        let video = if with_video { self.video.clone() } else { None };
        let audio = self.audio.clone();
        let init = self.next_init;
        self.next_init += 1;
        self.store
            .add_init(init, init_segment(video.as_ref(), audio.as_ref()));
        self.stats.inits += 1;
        let limits = Limits {
            part_target: self.config.part_duration,
            segment_target: self.config.segment_duration,
            max_segment: self.config.max_segment_duration,
            max_part_bytes: self.config.max_part_bytes,
            max_segment_bytes: self.config.max_segment_bytes,
        };
        let audio_queue = audio
            .as_ref()
            .map(|a| Queue::new(AUDIO_TRACK_ID, a.sample_rate, false));
        let (primary, secondary) = match (&video, audio_queue) {
            (Some(_), q) => (Queue::new(VIDEO_TRACK_ID, VIDEO_TIMESCALE, true), q),
            (None, Some(q)) => (q, None),
            (None, None) => return,
        };
        let codecs: Vec<&str> = [
            video.as_ref().map(|v| v.codecs.as_str()),
            audio.as_ref().map(|a| a.codecs.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.variant = Some(VariantInfo {
            codecs: codecs.join(","),
            resolution: video.as_ref().map(|v| (v.width, v.height)),
        });
        self.audio_clock = AudioClock::default();
        self.run = Some(Run {
            init,
            video,
            audio,
            frag: Fragmenter::new(primary, secondary, limits, self.sequence),
        });
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        for (ms, data) in held {
            if ms >= start_ms {
                self.mux_audio(ms, data);
            } else {
                self.stats.dropped_frames += 1;
            }
        }
    }

    /// Flushes the run and closes its last segment; the next run starts a discontinuity.
    fn close_run(&mut self) {
        if let Some(mut run) = self.run.take() {
            let mut out = Vec::new();
            let fallback = run
                .audio
                .as_ref()
                .map_or(1024, |a| a.frame_samples.max(960));
            run.frag.flush(fallback, &mut out);
            self.sequence = run.frag.sequence();
            self.stats.dropped_frames += run.frag.dropped;
            self.run = Some(run);
            self.apply(out);
            self.run = None;
        }
        if self.store.close() {
            self.stats.segments += 1;
        }
        self.discontinuity = self.discontinuity || self.store.last_complete_msn().is_some();
    }

    /// Publishes the fragmenter's output.
    fn apply(&mut self, out: Vec<Out>) {
        let Some(init) = self.run.as_ref().map(|r| r.init) else {
            return;
        };
        for o in out {
            match o {
                Out::Part {
                    bytes,
                    duration,
                    independent,
                    starts_segment,
                    start,
                } => {
                    let part = Part {
                        duration,
                        independent,
                        bytes,
                    };
                    if starts_segment {
                        if self.store.close() {
                            self.stats.segments += 1;
                        }
                        let pdt = self.wallclock.map(|(media, wall)| {
                            let start = u64::try_from(start.as_millis()).unwrap_or(u64::MAX);
                            wall.saturating_add(start).saturating_sub(media)
                        });
                        let disc = std::mem::take(&mut self.discontinuity);
                        self.store.begin(init, disc, pdt, part);
                    } else if !self.store.push(part) {
                        continue;
                    }
                    self.stats.parts += 1;
                }
                Out::SegmentEnd => {
                    if self.store.close() {
                        self.stats.segments += 1;
                    }
                }
            }
        }
    }
}
