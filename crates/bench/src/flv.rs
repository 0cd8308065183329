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

#[cfg(test)]
mod tests {
    use super::*;

    /// One FLV tag: header (type, size, timestamp with its extension byte, stream id), body,
    /// previous-tag size.
    fn tag(out: &mut Vec<u8>, type_id: u8, timestamp: u32, body: &[u8]) {
        out.push(type_id);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
        out.push((timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
        out.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }

    #[test]
    fn tags_become_media_kinds_with_full_timestamps() {
        let mut file = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        tag(&mut file, 18, 0, b"meta");
        tag(&mut file, 9, 0x0100_0021, b"video");
        tag(&mut file, 8, 40, b"au");
        tag(&mut file, 15, 50, b"skipped");
        let path = std::env::temp_dir().join(format!("bench-flv-{}.flv", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let loaded = load(&path);
        std::fs::remove_file(&path).unwrap();
        let (tags, duration) = loaded.unwrap();
        let got: Vec<(MediaKind, u32, &[u8])> = tags
            .iter()
            .map(|t| (t.kind, t.timestamp, &t.body[..]))
            .collect();
        assert_eq!(
            got,
            [
                (MediaKind::Metadata, 0, &b"meta"[..]),
                (MediaKind::Video, 0x0100_0021, &b"video"[..]),
                (MediaKind::Audio, 40, &b"au"[..]),
            ]
        );
        assert_eq!(duration, 0x0100_0021);
    }
}
