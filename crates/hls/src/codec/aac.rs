//! AAC: the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) for sample rate, channels, frame
//! length and the `mp4a.40.<object type>` codecs string.

use super::{AudioCodec, AudioConfig};
use crate::bits::{BitReader, Bits};
use crate::error::{Malformed, UnsupportedCodec};
use bytes::Bytes;

const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Object types browsers decode from MP4: Main, LC, SBR (HE-AAC), PS (HE-AAC v2).
const PLAYABLE: [u32; 4] = [1, 2, 5, 29];

/// Why an AudioSpecificConfig was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AscError {
    Malformed(Malformed),
    Unsupported(UnsupportedCodec),
}

/// Parses an AudioSpecificConfig as carried by an AAC sequence header.
pub(crate) fn parse_audio_specific_config(asc: &Bytes) -> Result<AudioConfig, AscError> {
    let truncated = || AscError::Malformed(Malformed::new("AudioSpecificConfig", "truncated"));
    let fields = read(asc).map_err(|_| truncated())??;
    if !PLAYABLE.contains(&fields.object_type) {
        return Err(AscError::Unsupported(UnsupportedCodec::audio(format!(
            "AAC object type {}",
            fields.object_type
        ))));
    }
    Ok(AudioConfig {
        codec: AudioCodec::Aac,
        sample_rate: fields.rate,
        channels: fields.channels,
        codecs: format!("mp4a.40.{}", fields.object_type),
        frame_samples: fields.frame_samples,
        specific: asc.clone(),
    })
}

struct Fields {
    object_type: u32,
    rate: u32,
    channels: u16,
    frame_samples: u32,
}

fn read(asc: &[u8]) -> Bits<Result<Fields, AscError>> {
    let bad = |why| {
        Ok(Err(AscError::Malformed(Malformed::new(
            "AudioSpecificConfig",
            why,
        ))))
    };
    let mut r = BitReader::new(asc);
    let object_type = object_type(&mut r)?;
    let Some(rate) = rate(&mut r)? else {
        return bad("reserved sampling frequency index");
    };
    if !(7350..=96000).contains(&rate) {
        return bad("sample rate out of range");
    }
    let channel_config = r.bits(4)?;
    let mut core = object_type;
    if matches!(object_type, 5 | 29) {
        // Explicit SBR/PS: the extension rate, then the underlying object type.
        self::rate(&mut r)?;
        core = self::object_type(&mut r)?;
    }
    // GASpecificConfig's frameLengthFlag: 960-sample frames instead of 1024.
    let short = matches!(core, 1..=4 | 6 | 7 | 17 | 19..=23) && r.bit()?;
    let channels = match channel_config {
        1..=6 => channel_config as u16,
        7 => 8,
        // 0: defined by a program config element; stereo is the safe guess for the entry.
        _ => 2,
    };
    Ok(Ok(Fields {
        object_type,
        rate,
        channels,
        frame_samples: if short { 960 } else { 1024 },
    }))
}

fn object_type(r: &mut BitReader<'_>) -> Bits<u32> {
    let t = r.bits(5)?;
    Ok(if t == 31 { 32 + r.bits(6)? } else { t })
}

fn rate(r: &mut BitReader<'_>) -> Bits<Option<u32>> {
    let index = r.bits(4)?;
    if index == 15 {
        return Ok(Some(r.bits(24)?));
    }
    Ok(RATES.get(index as usize).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_configs() {
        for (asc, rate, channels, codecs, samples) in [
            (&[0x12, 0x10][..], 44100, 2, "mp4a.40.2", 1024),
            (&[0x11, 0x90], 48000, 2, "mp4a.40.2", 1024),
            (&[0x11, 0x88], 48000, 1, "mp4a.40.2", 1024),
            (&[0x11, 0x94], 48000, 2, "mp4a.40.2", 960),
            // HE-AAC, explicit: 24 kHz core, 48 kHz extension, LC underneath.
            (&[0x2b, 0x12, 0x08, 0x80], 24000, 2, "mp4a.40.5", 1024),
        ] {
            let cfg = parse_audio_specific_config(&Bytes::copy_from_slice(asc)).unwrap();
            assert_eq!(
                (cfg.sample_rate, cfg.channels, cfg.codecs.as_str()),
                (rate, channels, codecs)
            );
            assert_eq!(cfg.frame_samples, samples);
        }
    }

    #[test]
    fn refused_configs() {
        assert!(matches!(
            parse_audio_specific_config(&Bytes::from_static(&[0x12])),
            Err(AscError::Malformed(_))
        ));
        // Reserved frequency index 13.
        assert!(matches!(
            parse_audio_specific_config(&Bytes::from_static(&[0x16, 0x90])),
            Err(AscError::Malformed(_))
        ));
        // Object type 42 (USAC) is not something a browser decodes from mp4a.
        assert!(matches!(
            parse_audio_specific_config(&Bytes::from_static(&[0xf9, 0x46, 0x20])),
            Err(AscError::Unsupported(_))
        ));
    }
}
