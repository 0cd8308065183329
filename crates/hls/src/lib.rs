//! Sans-IO low-latency HLS: a publisher's RTMP media messages in, CMAF (fragmented MP4) init
//! segments, parts and segments and RFC 8216bis playlists out, all in memory as `Bytes`.
//!
//! ```text
//!  push(kind, ts, FLV tag body) ──► flv ──► codec configs ─┐
//!                                     └──► frames ──► timeline ──► mux (cut into parts) ──► store
//!                                                                                          │
//!  lookup("part-4.2.m4s") ◄── Bytes ◄──────────────────────────────────────────────────────┤
//!  media_playlist(uris) / multivariant_playlist(uri) / reload(directives) ◄── playlist ◄───┘
//! ```
//!
//! The crate does no IO and keeps no clock: the server feeds every message of a stream to a
//! [`Segmenter`], serves what it returns, and parks blocking requests until a
//! [`push`](Segmenter::push) reports new parts ([`Update::parts`]).
//!
//! **Input**: FLV tag bodies with their millisecond timestamps (decode times): legacy AVC and
//! AAC, Enhanced RTMP `avc1`/`hvc1`/`av01` video and `mp4a`/`Opus` audio. Anything else gives
//! [`UnsupportedCodec`], which the server turns into "415" for HLS.
//!
//! **Timescales**: video 90 kHz (milliseconds convert exactly), audio its sample rate (AAC
//! frames are exactly 1024 ticks, Opus packets their sample count; millisecond timestamps
//! are snapped to whole frames while they agree to within half a frame). Times are rebased
//! to start at 0, the 32-bit wrap is handled, and junk steps are contained per track.
//!
//! **Start**: a run (one init segment) starts at the first video keyframe once the audio
//! sequence header is in too, or 1 s later as video-only; audio with no video configuration
//! for 1 s starts an audio-only run. A changed sequence header or [`Segmenter::discontinuity`]
//! closes the run; the next segment gets `EXT-X-DISCONTINUITY` and a new `EXT-X-MAP`.
//!
//! **Cutting**: segments at video keyframes once `segment_duration` is reached; parts of at
//! most `part_duration`, `INDEPENDENT` when they start with a keyframe; audio-only streams
//! by duration; hard caps on segment length, bytes and part count so memory stays bounded
//! (see [`Config`]). `EXT-X-TARGETDURATION` is the configured duration or the longest
//! segment so far, rounded up, and never decreases.
//!
//! **Serving**: [`Segmenter::status`] first ([`Status::Unsupported`] → 415 with its text);
//! playlists with [`Segmenter::media_playlist`] / [`Segmenter::multivariant_playlist`];
//! `_HLS_msn`/`_HLS_part` via [`Directives::from_query`] and [`Segmenter::reload`]
//! (`Wait` → park until an [`Update`] with `parts > 0`, at most
//! [`Segmenter::blocking_timeout`], then 503); media by name with [`Segmenter::lookup`].
//!
//! **Names**: `init-<n>.mp4`, `seg-<msn>.m4s`, `part-<msn>.<i>.m4s`; playlists write them
//! through a caller-supplied [`UriTemplate`]. Media sequence numbers and init ids are `u64`
//! and only grow.
//!
//! Specs: ISO/IEC 14496-12 (ISO BMFF), 14496-15 (AVC/HEVC in MP4), 14496-3 (AAC), AV1-ISOBMFF,
//! Opus-in-ISOBMFF, RFC 6381 (codecs), RFC 8216bis (HLS 2nd edition), Enhanced RTMP v2.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bits;
mod codec;
mod config;
mod error;
mod flv;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
mod mp4;
mod mux;
mod names;
mod playlist;
mod reload;
mod segmenter;
mod store;
mod timeline;

pub use codec::{AudioCodec, AudioConfig, VideoCodec, VideoConfig};
pub use config::{Config, MIN_PART_DURATION};
pub use error::{Malformed, PushError, Track, UnsupportedCodec};
pub use names::{Resource, UriTemplate};
pub use reload::{Directives, Reload};
pub use segmenter::{FrameKind, Lookup, Segmenter, Stats, Status, Update};
pub use store::NextPart;

/// `Content-Type` of playlists.
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
/// `Content-Type` of init segments, segments and parts.
pub const MEDIA_CONTENT_TYPE: &str = "video/mp4";

#[cfg(test)]
mod tests;
