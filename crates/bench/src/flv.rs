//! Reading an FLV file into memory once, so publishers replay it without touching the disk.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use rtmp_proto::message::type_id;
use rtmp_proto::session::MediaKind;
use std::path::Path;

/// One FLV tag: what the publisher sends as one RTMP message.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    /// Audio, video, or script data (metadata).
    pub(crate) kind: MediaKind,
    /// Milliseconds from the start of the file.
    pub(crate) timestamp: u32,
    pub(crate) body: Bytes,
}

/// The tags of `path`, in file order, and the file's duration in milliseconds.
pub(crate) fn load(path: &Path) -> anyhow::Result<(Vec<Tag>, u32)> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let data = Bytes::from(data);
    if data.len() < 9 || &data[..3] != b"FLV" {
        bail!("{} is not an FLV file", path.display());
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header_len + 4;
    let mut tags = Vec::new();
    while let Some(h) = data.get(pos..pos + 11) {
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let timestamp = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let Some(body) = data.get(pos + 11..pos + 11 + len) else {
            break;
        };
        // The FLV tag types are the RTMP message types of the same content.
        let kind = match h[0] & 0x1f {
            type_id::AUDIO => Some(MediaKind::Audio),
            type_id::VIDEO => Some(MediaKind::Video),
            type_id::DATA_AMF0 => Some(MediaKind::Metadata),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(Tag {
                kind,
                timestamp,
                body: data.slice_ref(body),
            });
        }
        pos += 11 + len + 4;
    }
    let duration = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
    if tags.is_empty() {
        bail!("{} has no tags", path.display());
    }
    Ok((tags, duration))
}
