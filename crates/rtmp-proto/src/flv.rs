//! Just enough of the FLV tag bodies carried by RTMP audio/video messages to run a GOP cache:
//! which frames are keyframes and which are codec sequence headers (decoder configuration that
//! a player needs before any frame). Covers legacy FLV (AVC/HEVC by codec id) and Enhanced RTMP
//! (FourCC: `avc1`, `hvc1`, `av01`, `vp09`; audio `mp4a`, `Opus`, …).

/// What the first bytes of a video message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoInfo {
    /// A frame a decoder can start from.
    pub keyframe: bool,
    /// Decoder configuration (AVCDecoderConfigurationRecord and friends), not a frame.
    pub sequence_header: bool,
    /// Legacy codec id (7 = AVC, 12 = HEVC in the common extension) or 0 for enhanced.
    pub codec_id: u8,
    /// Enhanced RTMP FourCC, when the message uses the extended header.
    pub fourcc: Option<[u8; 4]>,
}

/// Reads the video tag header; `None` for an empty body.
pub fn video_info(body: &[u8]) -> Option<VideoInfo> {
    let first = *body.first()?;
    let frame_type = (first >> 4) & 0x07;
    if first & 0x80 != 0 {
        // Enhanced RTMP: low nibble is the packet type, a FourCC follows.
        let packet_type = first & 0x0f;
        let fourcc = body.get(1..5).and_then(|s| <[u8; 4]>::try_from(s).ok());
        return Some(VideoInfo {
            keyframe: frame_type == 1,
            // 0 = SequenceStart, 5 = MPEG2TSSequenceStart.
            sequence_header: packet_type == 0 || packet_type == 5,
            codec_id: 0,
            fourcc,
        });
    }
    let codec_id = first & 0x0f;
    // AVC (7) and HEVC (12) carry an AVCPacketType byte: 0 = sequence header.
    let sequence_header = matches!(codec_id, 7 | 12) && body.get(1) == Some(&0);
    Some(VideoInfo {
        keyframe: frame_type == 1,
        sequence_header,
        codec_id,
        fourcc: None,
    })
}

/// What the first bytes of an audio message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioInfo {
    /// Decoder configuration (AudioSpecificConfig for AAC), not a frame.
    pub sequence_header: bool,
    /// Legacy sound format (10 = AAC) or 9 for Enhanced RTMP (`ExHeader`).
    pub sound_format: u8,
}

/// Reads the audio tag header; `None` for an empty body.
pub fn audio_info(body: &[u8]) -> Option<AudioInfo> {
    let first = *body.first()?;
    let sound_format = first >> 4;
    let sequence_header = match sound_format {
        // AAC: AACPacketType 0 = AudioSpecificConfig.
        10 => body.get(1) == Some(&0),
        // Enhanced RTMP audio: low nibble is the packet type, 0 = SequenceStart.
        9 => first & 0x0f == 0,
        _ => false,
    };
    Some(AudioInfo {
        sequence_header,
        sound_format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_keyframe_and_sequence_header() {
        let seq = video_info(&[0x17, 0x00, 0, 0, 0]).unwrap();
        assert!(seq.keyframe && seq.sequence_header);
        let key = video_info(&[0x17, 0x01, 0, 0, 0]).unwrap();
        assert!(key.keyframe && !key.sequence_header);
        let inter = video_info(&[0x27, 0x01, 0, 0, 0]).unwrap();
        assert!(!inter.keyframe && !inter.sequence_header);
        assert_eq!(video_info(&[]), None);
    }

    #[test]
    fn enhanced_hevc() {
        let seq = video_info(&[0x90, b'h', b'v', b'c', b'1']).unwrap();
        assert!(seq.keyframe && seq.sequence_header);
        assert_eq!(seq.fourcc, Some(*b"hvc1"));
        let coded = video_info(&[0x93, b'a', b'v', b'0', b'1']).unwrap();
        assert!(coded.keyframe && !coded.sequence_header);
    }

    #[test]
    fn aac_sequence_header() {
        assert!(
            audio_info(&[0xaf, 0x00, 0x12, 0x10])
                .unwrap()
                .sequence_header
        );
        assert!(!audio_info(&[0xaf, 0x01, 0x21]).unwrap().sequence_header);
        assert!(!audio_info(&[0x2f, 0x00]).unwrap().sequence_header);
    }
}
