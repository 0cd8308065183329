//! What an LL-HLS viewer needs from a playlist, scanned line by line as the body arrives:
//! parts are numbered as RFC 8216bis numbers them (`EXT-X-MEDIA-SEQUENCE`, then one media
//! sequence number per segment URI, parts counted from 0 within a segment), so any server's
//! URIs work, and only the few URIs the viewer fetches next are kept.

use crate::http::{Body, Head};

/// A playlist line longer than this is refused.
const MAX_LINE: usize = 4096;

/// A part: (media sequence number, part index within its segment), ordered as in playlists.
pub(crate) type PartId = (u64, u64);

/// A part the viewer will fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) id: PartId,
    /// As written in the playlist (relative to it, or an absolute path).
    pub(crate) uri: String,
    pub(crate) duration_ms: u32,
}

/// The scan of one playlist response.
#[derive(Debug, Default)]
pub(crate) struct PlaylistScan {
    /// The part asked for (blocking reload): the first listed part at or after it is kept.
    want: Option<PartId>,
    /// Keep the last URI line (a multivariant playlist's media playlist).
    keep_uri: bool,
    status: u16,
    /// A line split across reads.
    partial: Vec<u8>,
    msn: u64,
    index: u64,
    /// The first listed part at or after `want`.
    pub(crate) found: Option<Part>,
    /// The part listed right after `found`, if any.
    pub(crate) after: Option<PartId>,
    /// The `EXT-X-PRELOAD-HINT` part.
    pub(crate) hint: Option<PartId>,
    pub(crate) last_uri: Option<String>,
}

impl PlaylistScan {
    /// For a multivariant playlist: keeps its last URI.
    pub(crate) fn multivariant() -> Self {
        Self {
            keep_uri: true,
            ..Self::default()
        }
    }

    /// For a media playlist requested for part `want` (blocking reload) or none.
    pub(crate) fn media(want: Option<PartId>) -> Self {
        Self {
            want,
            ..Self::default()
        }
    }

    fn on_line(&mut self, line: &[u8]) -> Result<(), &'static str> {
        let line = std::str::from_utf8(line)
            .map_err(|_| "playlist line is not UTF-8")?
            .trim_end_matches('\r');
        if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let id = (self.msn, self.index);
            self.index += 1;
            let found = self.found.is_some();
            match self.want {
                Some(want) if !found && id >= want => {
                    let uri = attr(attrs, "URI").ok_or("EXT-X-PART without URI")?;
                    let secs: f64 = attr(attrs, "DURATION")
                        .and_then(|d| d.parse().ok())
                        .ok_or("EXT-X-PART without a DURATION")?;
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let duration_ms = (secs * 1000.0).round().clamp(0.0, 1e9) as u32;
                    self.found = Some(Part {
                        id,
                        uri: uri.to_owned(),
                        duration_ms,
                    });
                }
                _ if found && self.after.is_none() => self.after = Some(id),
                _ => {}
            }
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            if attr(attrs, "TYPE") == Some("PART") {
                self.hint = Some((self.msn, self.index));
            }
        } else if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            self.msn = n.trim().parse().map_err(|_| "bad EXT-X-MEDIA-SEQUENCE")?;
        } else if !line.is_empty() && !line.starts_with('#') {
            self.msn += 1;
            self.index = 0;
            if self.keep_uri {
                self.last_uri = Some(line.to_owned());
            }
        }
        Ok(())
    }
}

impl Body for PlaylistScan {
    fn head(&mut self, head: &Head) {
        self.status = head.status;
    }

    fn data(&mut self, mut data: &[u8]) -> Result<(), &'static str> {
        if self.status != 200 {
            return Ok(());
        }
        while let Some(lf) = data.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.on_line(&data[..lf])?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&data[..lf]);
                self.on_line(&line)?;
            }
            data = &data[lf + 1..];
        }
        if self.partial.len() + data.len() > MAX_LINE {
            return Err("playlist line too long");
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }
}

impl PlaylistScan {
    /// Ends the scan: a last line without a newline counts too.
    pub(crate) fn finish(&mut self) -> Result<(), &'static str> {
        if self.status == 200 && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.on_line(&line)?;
        }
        Ok(())
    }
}

/// The value of attribute `name` in an attribute list (quotes removed).
fn attr<'a>(mut attrs: &'a str, name: &str) -> Option<&'a str> {
    while !attrs.is_empty() {
        let (key, rest) = attrs.split_once('=')?;
        let (value, rest) = if let Some(quoted) = rest.strip_prefix('"') {
            let (v, r) = quoted.split_once('"')?;
            (v, r.strip_prefix(',').unwrap_or(r))
        } else {
            rest.split_once(',').unwrap_or((rest, ""))
        };
        if key.trim() == name {
            return Some(value);
        }
        attrs = rest;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Framing;

    const MEDIA: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
#EXT-X-MAP:URI=\"init-0.mp4\"\n\
#EXT-X-PART:DURATION=0.167,URI=\"part-4.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.033,URI=\"part-4.1.m4s\"\n#EXTINF:0.200,\nseg-4.m4s\n\
#EXT-X-PART:DURATION=0.200,URI=\"part-5.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.200,URI=\"part-5.1.m4s\"\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-5.2.m4s\"\n";

    fn scan(mut s: PlaylistScan, text: &str, step: usize) -> PlaylistScan {
        s.head(&Head {
            status: 200,
            framing: Framing::Length(text.len() as u64),
            keep_alive: true,
        });
        for piece in text.as_bytes().chunks(step) {
            assert_eq!(s.data(piece), Ok(()));
        }
        assert_eq!(s.finish(), Ok(()));
        s
    }

    #[test]
    fn parts_numbered_by_the_playlist() {
        for step in 1..=MEDIA.len() {
            let s = scan(PlaylistScan::media(None), MEDIA, step);
            assert_eq!(s.hint, Some((5, 2)), "step {step}");
            assert_eq!(s.found, None);
            let s = scan(PlaylistScan::media(Some((4, 1))), MEDIA, step);
            assert_eq!(
                s.found,
                Some(Part {
                    id: (4, 1),
                    uri: "part-4.1.m4s".into(),
                    duration_ms: 33
                })
            );
            assert_eq!(s.after, Some((5, 0)));
        }
        // Past the last part of segment 4 means the first part of segment 5.
        let s = scan(PlaylistScan::media(Some((4, 2))), MEDIA, 7);
        assert_eq!(s.found.map(|p| p.uri), Some("part-5.0.m4s".into()));
        assert_eq!(s.after, Some((5, 1)));
        let s = scan(PlaylistScan::media(Some((5, 1))), MEDIA, 7);
        assert_eq!(s.found.map(|p| p.id), Some((5, 1)));
        assert_eq!(s.after, None);
    }

    #[test]
    fn multivariant_gives_the_media_playlist() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.64001e,mp4a.40.2\"\ns/ab12/media.m3u8";
        let s = scan(PlaylistScan::multivariant(), text, 5);
        assert_eq!(s.last_uri.as_deref(), Some("s/ab12/media.m3u8"));
    }

    #[test]
    fn attributes() {
        let a = "DURATION=0.2,URI=\"a,b.m4s\",INDEPENDENT=YES";
        assert_eq!(attr(a, "URI"), Some("a,b.m4s"));
        assert_eq!(attr(a, "INDEPENDENT"), Some("YES"));
        assert_eq!(attr(a, "DURATION"), Some("0.2"));
        assert_eq!(attr(a, "BYTERANGE"), None);
    }
}
