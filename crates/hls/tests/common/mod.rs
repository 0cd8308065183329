//! Test helpers: an FLV file reader (the tags ffmpeg writes are exactly the RTMP message
//! bodies a publisher sends), ffmpeg/ffprobe runners and scratch directories.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod annexb;
pub(crate) mod obu;

use bytes::Bytes;
use lifeline_hls::FrameKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One FLV tag: kind, timestamp (ms) and body.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub(crate) kind: FrameKind,
    pub(crate) timestamp: u32,
    pub(crate) body: Bytes,
}

/// Reads the tags of an FLV file (header, then `[prev size][tag]...`).
pub(crate) fn read_flv(data: &[u8]) -> Vec<Tag> {
    assert_eq!(&data[..3], b"FLV", "not an FLV file");
    let header_len = u32::from_be_bytes(data[5..9].try_into().unwrap()) as usize;
    let mut at = header_len + 4;
    let mut tags = Vec::new();
    while at + 11 <= data.len() {
        let kind = data[at];
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let ts = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let body = &data[at + 11..at + 11 + size];
        let kind = match kind & 0x1f {
            8 => Some(FrameKind::Audio),
            9 => Some(FrameKind::Video),
            18 => Some(FrameKind::Metadata),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(Tag {
                kind,
                timestamp: ts,
                body: Bytes::copy_from_slice(body),
            });
        }
        at += 11 + size + 4;
    }
    tags
}

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(testkit::unique_name(&format!("lifeline-hls-{name}-")));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("LIFELINE_KEEP_SCRATCH").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs a tool, failing the test with its stderr when it fails.
pub(crate) fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// ffprobe's CSV output lines for `args` on `input`.
pub(crate) fn probe(dir: &Path, input: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-v", "error"];
    if input.ends_with(".m3u8") {
        all.extend_from_slice(&["-allowed_extensions", "ALL"]);
    }
    all.extend_from_slice(args);
    all.extend_from_slice(&["-of", "csv=p=0", input]);
    let out = run("ffprobe", &all, dir);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
