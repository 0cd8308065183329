//! Messages in: sequence headers update the configurations (a change closes the run), frames
//! go to the run's fragmenter, or are held until a run can start.

use super::Segmenter;
use super::runs::Held;
use crate::error::{PushError, Track, UnsupportedCodec};
use crate::flv::{AudioTag, VideoTag, parse_audio, parse_video};
use crate::mp4::VIDEO_TIMESCALE;
use crate::mux::Sample;
use bytes::Bytes;

impl Segmenter {
    pub(super) fn set_unsupported(&mut self, u: &UnsupportedCodec) {
        if self.unsupported.as_ref() != Some(u) {
            self.close_run();
            self.clear_held();
            self.unsupported = Some(u.clone());
        }
    }

    pub(super) fn video_message(&mut self, timestamp: u32, body: &Bytes) -> Result<(), PushError> {
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
                if self.run.is_none() {
                    self.try_start(self.last_ms);
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
                    // A run starts at a keyframe; frames before the first one are useless.
                    if !keyframe && !self.held.iter().any(|h| h.track == Track::Video) {
                        self.stats.dropped_frames += 1;
                        return Ok(());
                    }
                    self.hold(Held {
                        track: Track::Video,
                        ms,
                        cts,
                        keyframe,
                        data,
                    });
                    self.try_start(ms);
                    return Ok(());
                }
                self.mux_video(ms, cts, keyframe, data);
            }
        }
        Ok(())
    }

    pub(super) fn mux_video(&mut self, ms: u64, cts: i32, keyframe: bool, data: Bytes) {
        let ticks_per_ms = i64::from(VIDEO_TIMESCALE / 1000);
        let inband = self
            .run
            .as_ref()
            .and_then(|r| r.video.as_ref())
            .map(|v| v.inband.clone())
            .unwrap_or_default();
        let data = if keyframe && !inband.is_empty() {
            let mut with = bytes::BytesMut::with_capacity(inband.len() + data.len());
            with.extend_from_slice(&inband);
            with.extend_from_slice(&data);
            with.freeze()
        } else {
            data
        };
        let sample = Sample {
            dts: ms.saturating_mul(ticks_per_ms.unsigned_abs()),
            cts: i32::try_from(i64::from(cts) * ticks_per_ms).unwrap_or(if cts < 0 {
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

    pub(super) fn audio_message(&mut self, timestamp: u32, body: &Bytes) -> Result<(), PushError> {
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
                if self.run.is_none() {
                    self.try_start(self.last_ms);
                }
            }
            AudioTag::Frame(data) => {
                let ms = self.map_time(Track::Audio, timestamp);
                if self.unsupported.is_some() || self.audio.is_none() {
                    self.stats.dropped_frames += 1;
                    return Ok(());
                }
                if self.run.is_none() {
                    self.hold(Held {
                        track: Track::Audio,
                        ms,
                        cts: 0,
                        keyframe: true,
                        data,
                    });
                    self.try_start(ms);
                    return Ok(());
                }
                self.mux_audio(ms, data);
            }
        }
        Ok(())
    }

    pub(super) fn map_time(&mut self, track: Track, timestamp: u32) -> u64 {
        let ms = self.timeline.map(track, timestamp);
        self.last_ms = self.last_ms.max(ms);
        ms
    }

    pub(super) fn mux_audio(&mut self, ms: u64, data: Bytes) {
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
}
