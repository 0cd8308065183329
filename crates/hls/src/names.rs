//! Resource names and the URIs built from them. Names are fixed (`init-<n>.mp4`,
//! `seg-<msn>.m4s`, `part-<msn>.<index>.m4s`); the caller's [`UriTemplate`] wraps them, so the
//! server can route by path and carry a session id in a path prefix or a query suffix.

use std::fmt;

/// A resource the segmenter can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// An init segment (`EXT-X-MAP`), by its id.
    Init(u64),
    /// A whole media segment, by media sequence number.
    Segment(u64),
    /// A partial segment: media sequence number of its parent, index within it.
    Part(u64, u32),
}

impl Resource {
    /// Parses a name as [`Display`](fmt::Display) writes it; anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(n) = name
            .strip_prefix("init-")
            .and_then(|s| s.strip_suffix(".mp4"))
        {
            return number(n).map(Self::Init);
        }
        if let Some(n) = name
            .strip_prefix("seg-")
            .and_then(|s| s.strip_suffix(".m4s"))
        {
            return number(n).map(Self::Segment);
        }
        let rest = name.strip_prefix("part-")?.strip_suffix(".m4s")?;
        let (msn, index) = rest.split_once('.')?;
        Some(Self::Part(
            number(msn)?,
            u32::try_from(number(index)?).ok()?,
        ))
    }
}

/// Digits only (no sign, no spaces), so every resource has exactly one name.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Init(n) => write!(f, "init-{n}.mp4"),
            Self::Segment(n) => write!(f, "seg-{n}.m4s"),
            Self::Part(n, i) => write!(f, "part-{n}.{i}.m4s"),
        }
    }
}

/// How playlist URIs are written: `prefix` + resource name + `suffix`. With the defaults the
/// URIs are bare names, relative to the playlist's own URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UriTemplate {
    /// Written before the name, e.g. `"/hls/live/cam1/"` or `"s/8f3a/"`.
    pub prefix: String,
    /// Written after the name, e.g. `"?session=8f3a"`.
    pub suffix: String,
}

impl UriTemplate {
    /// A template with only a prefix.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            suffix: String::new(),
        }
    }

    /// The URI of `resource`.
    pub fn uri(&self, resource: Resource) -> String {
        format!("{}{resource}{}", self.prefix, self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in [
            Resource::Init(0),
            Resource::Segment(18_446_744_073_709_551_615),
            Resource::Part(7, 3),
        ] {
            assert_eq!(Resource::parse(&r.to_string()), Some(r));
        }
        for bad in [
            "",
            "init-.mp4",
            "seg-+1.m4s",
            "seg-01.m4s",
            "seg-1.mp4",
            "part-1.m4s",
            "part-1.x.m4s",
            "part-1.4294967296.m4s",
            "seg-18446744073709551616.m4s",
            "../seg-1.m4s",
            "seg- 1.m4s",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn template() {
        let t = UriTemplate {
            prefix: "/hls/a/".into(),
            suffix: "?s=1".into(),
        };
        assert_eq!(t.uri(Resource::Part(2, 0)), "/hls/a/part-2.0.m4s?s=1");
        assert_eq!(UriTemplate::default().uri(Resource::Init(1)), "init-1.mp4");
    }
}
