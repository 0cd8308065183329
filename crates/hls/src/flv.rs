//! FLV tag bodies (= RTMP audio/video message bodies) into decoder configurations and coded
//! frames: legacy AVC (codec id 7, and 12 for the common HEVC extension) and AAC (sound format
//! 10), and Enhanced RTMP v2 (`avc1`, `hvc1`, `av01`; `mp4a`, `Opus`), including ModEx
//! prefixes. Frame data is a zero-copy slice of the message body.

use crate::codec::{
    AudioConfig, VideoConfig, parse_audio_specific_config, parse_av1c, parse_avcc, parse_hvcc,
    parse_opus_head,
};
use crate::error::{Malformed, PushError, UnsupportedCodec};
use bytes::Bytes;

/// What one video message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VideoTag {
    /// A sequence header: the decoder configuration.
    Config(VideoConfig),
    /// One coded frame (access unit / temporal unit).
    Frame {
        /// A frame a decoder can start from.
        keyframe: bool,
        /// Presentation minus decode time, in milliseconds.
        cts: i32,
        /// Length-prefixed NAL units (AVC/HEVC) or OBUs (AV1).
        data: Bytes,
    },
    /// Nothing to package: end of sequence, command frames, video metadata.
    Skip,
}

/// What one audio message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AudioTag {
    Config(AudioConfig),
    Frame(Bytes),
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fourcc {
    Avc,
    Hevc,
    Av1,
}

const ENHANCED: &str = "Enhanced RTMP video tag";
const ENHANCED_AUDIO: &str = "Enhanced RTMP audio tag";

/// Parses a video message body.
pub(crate) fn parse_video(body: &Bytes) -> Result<VideoTag, PushError> {
    let Some(&first) = body.first() else {
        return Ok(VideoTag::Skip);
    };
    if first & 0x80 != 0 {
        return parse_enhanced_video(body, first);
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if frame_type == 5 {
        // Video info / command frame: no picture.
        return Ok(VideoTag::Skip);
    }
    let kind = match codec {
        7 => Fourcc::Avc,
        12 => Fourcc::Hevc,
        2 => return Err(UnsupportedCodec::video("Sorenson H.263").into()),
        3 | 6 => return Err(UnsupportedCodec::video("Screen video").into()),
        4 | 5 => return Err(UnsupportedCodec::video("On2 VP6").into()),
        id => return Err(UnsupportedCodec::video(format!("FLV codec id {id}")).into()),
    };
    let Some(&[_, packet_type, c0, c1, c2]) = body.get(..5) else {
        return Err(Malformed::new("AVC video tag", "shorter than 5 bytes").into());
    };
    let cts = si24([c0, c1, c2]);
    let data = body.slice(5..);
    match packet_type {
        0 => config(kind, &data),
        1 => Ok(VideoTag::Frame {
            keyframe: matches!(frame_type, 1 | 4),
            cts,
            data,
        }),
        2 => Ok(VideoTag::Skip),
        _ => Err(Malformed::new("AVC video tag", "unknown AVCPacketType").into()),
    }
}

fn parse_enhanced_video(body: &Bytes, first: u8) -> Result<VideoTag, PushError> {
    let frame_type = (first >> 4) & 0x07;
    let (packet_type, mut at) = skip_mod_ex(body, first & 0x0f, 1, ENHANCED)?;
    if frame_type == 5 && packet_type != 4 {
        // A command frame carries one command byte and no FourCC.
        return Ok(VideoTag::Skip);
    }
    if packet_type == 6 {
        return Err(UnsupportedCodec::video("Enhanced RTMP multitrack").into());
    }
    let fourcc = body
        .get(at..at + 4)
        .ok_or(Malformed::new(ENHANCED, "no FourCC"))?;
    let kind = match fourcc {
        b"avc1" => Fourcc::Avc,
        b"hvc1" => Fourcc::Hevc,
        b"av01" => Fourcc::Av1,
        other => return Err(UnsupportedCodec::video(fourcc_name(other)).into()),
    };
    at += 4;
    let keyframe = matches!(frame_type, 1 | 4);
    match packet_type {
        0 => config(kind, &body.slice(at..)),
        1 if kind != Fourcc::Av1 => {
            let Some(&[c0, c1, c2]) = body.get(at..at + 3) else {
                return Err(Malformed::new(ENHANCED, "no composition time").into());
            };
            Ok(VideoTag::Frame {
                keyframe,
                cts: si24([c0, c1, c2]),
                data: body.slice(at + 3..),
            })
        }
        1 | 3 => Ok(VideoTag::Frame {
            keyframe,
            cts: 0,
            data: frame_data(kind, body.slice(at..)),
        }),
        // SequenceEnd, Metadata, MPEG2TSSequenceStart: nothing to package.
        2 | 4 | 5 => Ok(VideoTag::Skip),
        _ => Err(Malformed::new(ENHANCED, "reserved packet type").into()),
    }
}

/// AV1 samples in ISOBMFF should not start with a temporal delimiter; FLV ones often do.
fn frame_data(kind: Fourcc, data: Bytes) -> Bytes {
    if kind == Fourcc::Av1
        && let Some((crate::codec::OBU_TEMPORAL_DELIMITER, _, rest)) = crate::codec::next_obu(&data)
    {
        let skip = data.len() - rest.len();
        return data.slice(skip..);
    }
    data
}

fn config(kind: Fourcc, record: &Bytes) -> Result<VideoTag, PushError> {
    let cfg = match kind {
        Fourcc::Avc => parse_avcc(record)?,
        Fourcc::Hevc => parse_hvcc(record)?,
        Fourcc::Av1 => parse_av1c(record)?,
    };
    Ok(VideoTag::Config(cfg))
}

/// Parses an audio message body.
pub(crate) fn parse_audio(body: &Bytes) -> Result<AudioTag, PushError> {
    let Some(&first) = body.first() else {
        // An empty message is "silence" (Enhanced RTMP v2).
        return Ok(AudioTag::Skip);
    };
    match first >> 4 {
        10 => {
            let packet_type = *body
                .get(1)
                .ok_or(Malformed::new("AAC audio tag", "no AACPacketType"))?;
            let data = body.slice(2..);
            match packet_type {
                0 => aac_config(&data),
                1 => Ok(AudioTag::Frame(data)),
                _ => Err(Malformed::new("AAC audio tag", "unknown AACPacketType").into()),
            }
        }
        9 => parse_enhanced_audio(body, first),
        format => Err(UnsupportedCodec::audio(sound_format_name(format)).into()),
    }
}

fn parse_enhanced_audio(body: &Bytes, first: u8) -> Result<AudioTag, PushError> {
    let (packet_type, at) = skip_mod_ex(body, first & 0x0f, 1, ENHANCED_AUDIO)?;
    if packet_type == 5 {
        return Err(UnsupportedCodec::audio("Enhanced RTMP multitrack").into());
    }
    let fourcc = body
        .get(at..at + 4)
        .ok_or(Malformed::new(ENHANCED_AUDIO, "no FourCC"))?;
    let opus = match fourcc {
        b"mp4a" => false,
        b"Opus" => true,
        other => return Err(UnsupportedCodec::audio(fourcc_name(other)).into()),
    };
    let data = body.slice(at + 4..);
    match packet_type {
        0 if opus => Ok(AudioTag::Config(parse_opus_head(&data)?)),
        0 => aac_config(&data),
        1 => Ok(AudioTag::Frame(data)),
        // SequenceEnd, MultichannelConfig (the ID header already says it).
        2 | 4 => Ok(AudioTag::Skip),
        _ => Err(Malformed::new(ENHANCED_AUDIO, "reserved packet type").into()),
    }
}

fn aac_config(asc: &Bytes) -> Result<AudioTag, PushError> {
    use crate::codec::AscError;
    match parse_audio_specific_config(asc) {
        Ok(cfg) => Ok(AudioTag::Config(cfg)),
        Err(AscError::Malformed(m)) => Err(m.into()),
        Err(AscError::Unsupported(u)) => Err(u.into()),
    }
}

/// Enhanced RTMP ModEx: `[size-1: u8 (or 0xff + u16)] [data] [modex type:4 | packet type:4]`,
/// repeated while the packet type is ModEx (7). Returns the real packet type and where the
/// FourCC starts.
fn skip_mod_ex(
    body: &[u8],
    mut packet_type: u8,
    mut at: usize,
    what: &'static str,
) -> Result<(u8, usize), Malformed> {
    let truncated = Malformed::new(what, "truncated ModEx");
    // Each round consumes at least two bytes, so this ends; the cap keeps it short.
    for _ in 0..16 {
        if packet_type != 7 {
            return Ok((packet_type, at));
        }
        let mut size = usize::from(*body.get(at).ok_or(truncated)?) + 1;
        at += 1;
        if size == 256 {
            let Some(&[hi, lo]) = body.get(at..at + 2) else {
                return Err(truncated);
            };
            size = usize::from(u16::from_be_bytes([hi, lo])) + 1;
            at += 2;
        }
        at += size;
        packet_type = body.get(at).ok_or(truncated)? & 0x0f;
        at += 1;
    }
    Err(Malformed::new(what, "too many ModEx prefixes"))
}

fn si24(b: [u8; 3]) -> i32 {
    // Sign-extend from bit 23.
    (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
}

fn fourcc_name(cc: &[u8]) -> String {
    if cc.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(cc))
    } else {
        format!("FourCC {cc:02x?}")
    }
}

fn sound_format_name(format: u8) -> String {
    match format {
        0 | 3 => "PCM".into(),
        1 => "ADPCM".into(),
        2 | 14 => "MP3".into(),
        4..=6 => "Nellymoser".into(),
        7 | 8 => "G.711".into(),
        11 => "Speex".into(),
        f => format!("FLV sound format {f}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::avc_test_record;

    #[test]
    fn legacy_avc_and_aac() {
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend_from_slice(&avc_test_record());
        assert!(matches!(
            parse_video(&Bytes::from(seq)),
            Ok(VideoTag::Config(_))
        ));
        let frame = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video(&frame),
            Ok(VideoTag::Frame {
                keyframe: false,
                cts: -2,
                data: frame.slice(5..)
            })
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 2, 0, 0, 0])),
            Ok(VideoTag::Skip)
        );
        assert!(parse_video(&Bytes::from_static(&[0x17, 1, 0])).is_err());
        assert!(matches!(
            parse_audio(&Bytes::from_static(&[0xaf, 0, 0x12, 0x10])),
            Ok(AudioTag::Config(_))
        ));
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 1, 0x21])),
            Ok(AudioTag::Frame(Bytes::from_static(&[0x21])))
        );
    }

    #[test]
    fn sequence_headers_in_every_form() {
        use crate::codec::{VideoCodec, hevc_test_record};
        let cases = [
            (vec![0x17, 0, 0, 0, 0], avc_test_record(), VideoCodec::Avc),
            (b"\x90avc1".to_vec(), avc_test_record(), VideoCodec::Avc),
            // Legacy codec id 12: the common (pre-Enhanced RTMP) HEVC extension.
            (vec![0x1c, 0, 0, 0, 0], hevc_test_record(), VideoCodec::Hevc),
            (b"\x90hvc1".to_vec(), hevc_test_record(), VideoCodec::Hevc),
        ];
        for (head, record, codec) in cases {
            let body = Bytes::from([&head[..], &record[..]].concat());
            let Ok(VideoTag::Config(cfg)) = parse_video(&body) else {
                panic!("{head:02x?}");
            };
            assert_eq!((cfg.codec, cfg.width, cfg.height), (codec, 320, 240));
            assert_eq!(cfg.record, record);
        }
        // ModEx before a SequenceStart, and a truncated record.
        let mut modex = b"\x97\x02\x00\x01\x02\x00avc1".to_vec();
        modex.extend_from_slice(&avc_test_record());
        assert!(matches!(
            parse_video(&Bytes::from(modex)),
            Ok(VideoTag::Config(_))
        ));
        assert!(parse_video(&Bytes::from_static(b"\x90avc1\x01\x64")).is_err());
    }

    #[test]
    fn enhanced_tags() {
        let frame = Bytes::from_static(b"\x91hvc1\x00\x00\x21\x00\x00\x00\x02\x26\x01");
        assert_eq!(
            parse_video(&frame),
            Ok(VideoTag::Frame {
                keyframe: true,
                cts: 0x21,
                data: frame.slice(8..)
            })
        );
        let x = Bytes::from_static(b"\xa3avc1\x00\x00\x00\x01\x41");
        assert!(matches!(
            parse_video(&x),
            Ok(VideoTag::Frame {
                keyframe: false,
                cts: 0,
                ..
            })
        ));
        // AV1: the leading temporal delimiter is dropped.
        let av1 = Bytes::from_static(b"\x91av01\x12\x00\x32\x01\xaa");
        assert!(
            matches!(parse_video(&av1), Ok(VideoTag::Frame { data, .. }) if &data[..] == b"\x32\x01\xaa")
        );
        // ModEx (timestamp offset, 3 bytes) in front of CodedFramesX.
        let modex = Bytes::from_static(b"\x97\x02\x00\x01\x02\x03avc1\x00\x00\x00\x01\x41");
        assert!(matches!(
            parse_video(&modex),
            Ok(VideoTag::Frame { keyframe: true, .. })
        ));
        assert_eq!(
            parse_video(&Bytes::from_static(b"\xd0\x00")),
            Ok(VideoTag::Skip)
        );
        assert!(matches!(
            parse_video(&Bytes::from_static(b"\x90vp09\x01")),
            Err(PushError::Unsupported(u)) if u.codec == "\"vp09\""
        ));
        assert!(parse_video(&Bytes::from_static(b"\x97\xff")).is_err());
        let opus = Bytes::from_static(b"\x91Opus\xfc\x01\x02");
        assert_eq!(parse_audio(&opus), Ok(AudioTag::Frame(opus.slice(5..))));
        assert!(matches!(
            parse_audio(&Bytes::from_static(b"\x90Opus")),
            Ok(AudioTag::Config(_))
        ));
        assert!(matches!(
            parse_audio(&Bytes::from_static(b"\x90fLaC")),
            Err(PushError::Unsupported(_))
        ));
        assert!(matches!(
            parse_audio(&Bytes::from_static(&[0x2f, 0xff])),
            Err(PushError::Unsupported(u)) if u.codec == "MP3"
        ));
    }
}
