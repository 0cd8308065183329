//! A stream's low-latency HLS state: its segmenter (from `lifeline-hls`), fed by the
//! publisher with every message, and a generation counter that wakes requests parked on a
//! part that is not made yet. It exists only while someone watches over HLS or MP4: the
//! first such viewer starts it (primed with the stream's cached start), the last one's
//! [`HlsUse`] dropping ends it and its memory.

use bytes::Bytes;
use lifeline_hls::{Config, FrameKind, Segmenter};
use rtmp_proto::session::MediaKind;
use std::sync::Mutex;
use tokio::sync::watch;

/// One stream's segmenter and its wake-ups.
#[derive(Debug)]
pub struct HlsStream {
    seg: Mutex<Segmenter>,
    /// Bumped whenever something parked requests wait for may have changed: a new part, a
    /// new status (live, unsupported).
    updates: watch::Sender<u64>,
    /// The media playlist as last rendered, with the update it was rendered at: a thousand
    /// sessions blocked on the same part get the same bytes, rendered once (the URIs are
    /// relative, so every session's playlist is the same).
    playlist: Mutex<Option<(u64, Bytes)>>,
}

impl HlsStream {
    /// An empty segmenter with `config`.
    pub(crate) fn new(config: Config) -> Self {
        Self {
            seg: Mutex::new(Segmenter::new(config)),
            updates: watch::Sender::new(0),
            playlist: Mutex::new(None),
        }
    }

    /// Feeds one message (timestamps as players see them, continuous across publishers).
    pub(crate) fn push(&self, kind: MediaKind, timestamp: u32, payload: Bytes) {
        let kind = match kind {
            MediaKind::Audio => FrameKind::Audio,
            MediaKind::Video => FrameKind::Video,
            MediaKind::Metadata => FrameKind::Metadata,
        };
        let (update, before, after) = {
            let mut seg = crate::util::lock(&self.seg);
            let before = seg.status();
            let update = seg.push(kind, timestamp, payload);
            (update, before, seg.status())
        };
        let parts = update.map_or(0, |u| u.parts);
        if parts > 0 || before != after {
            self.updates.send_modify(|g| *g += 1);
        }
    }

    /// A new publisher: the next segment starts a new run (EXT-X-DISCONTINUITY, new map).
    pub(crate) fn discontinuity(&self) {
        let update = crate::util::lock(&self.seg).discontinuity();
        if update.parts > 0 {
            self.updates.send_modify(|g| *g += 1);
        }
    }

    /// Runs `f` on the segmenter (playlists, lookups): hold it only for that.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Segmenter) -> T) -> T {
        f(&crate::util::lock(&self.seg))
    }

    /// The media playlist now (rendered once per update, shared by every request).
    pub(crate) fn media_playlist(&self) -> Option<Bytes> {
        let generation = *self.updates.borrow();
        if let Some((g, bytes)) = &*crate::util::lock(&self.playlist)
            && *g == generation
        {
            return Some(bytes.clone());
        }
        let text = self.with(|s| s.media_playlist(&lifeline_hls::UriTemplate::default(), false))?;
        let bytes = Bytes::from(text);
        *crate::util::lock(&self.playlist) = Some((generation, bytes.clone()));
        Some(bytes)
    }

    /// A receiver that sees every later update.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Bytes the segmenter holds.
    pub fn memory(&self) -> usize {
        self.with(Segmenter::memory)
    }
}
