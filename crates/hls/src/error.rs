//! What can go wrong with a publisher's media, as typed values. None of these is fatal to the
//! [`Segmenter`](crate::Segmenter): it drops what it cannot use and goes on, and the caller
//! decides what to tell a player (an HLS request for a stream whose codec we cannot package is
//! best answered "415 Unsupported Media Type" with [`UnsupportedCodec`]'s text as the reason).

use std::fmt;

/// Which of the two tracks a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// Video messages (RTMP type 9).
    Video,
    /// Audio messages (RTMP type 8).
    Audio,
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Video => "video",
            Self::Audio => "audio",
        })
    }
}

/// A codec (or a codec feature) that CMAF/HLS output does not cover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{track} codec {codec} cannot be played over HLS (supported: {supported})")]
pub struct UnsupportedCodec {
    /// The track it was found on.
    pub track: Track,
    /// What the publisher sent, e.g. `"MP3"`, `"vp09"`, `"AAC object type 42"`.
    pub codec: String,
    /// What we would have accepted instead.
    pub supported: &'static str,
}

/// The codecs we package, as [`UnsupportedCodec::supported`] names them.
pub(crate) const SUPPORTED_VIDEO: &str = "H.264, HEVC, AV1";
/// The audio codecs we package.
pub(crate) const SUPPORTED_AUDIO: &str = "AAC-LC, HE-AAC, Opus";

impl UnsupportedCodec {
    pub(crate) fn video(codec: impl Into<String>) -> Self {
        Self {
            track: Track::Video,
            codec: codec.into(),
            supported: SUPPORTED_VIDEO,
        }
    }

    pub(crate) fn audio(codec: impl Into<String>) -> Self {
        Self {
            track: Track::Audio,
            codec: codec.into(),
            supported: SUPPORTED_AUDIO,
        }
    }
}

/// A message or a configuration record that does not parse. `what` names the structure and
/// `why` the check that failed, both static so that reporting allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {why}")]
pub struct Malformed {
    /// The structure, e.g. `"AVCDecoderConfigurationRecord"`.
    pub what: &'static str,
    /// The failed check, e.g. `"truncated"`.
    pub why: &'static str,
}

impl Malformed {
    pub(crate) const fn new(what: &'static str, why: &'static str) -> Self {
        Self { what, why }
    }
}

/// Why [`Segmenter::push`](crate::Segmenter::push) did not use a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The codec cannot be packaged; the stream has no HLS output until the publisher changes.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedCodec),
    /// The message does not parse; it was dropped.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// [`Segmenter::end`](crate::Segmenter::end) was called: the playlist is final.
    #[error("the stream has ended")]
    Ended,
}
