//! The CMAF header (init segment): `ftyp` + `moov` with one `trak` per track and `mvex`/`trex`
//! so every sample lives in fragments. Video and audio share one init, as HLS wants for a
//! muxed variant.
//!
//! Timescales: video uses 90 kHz (milliseconds convert exactly, and it is what every HLS
//! packager uses); audio uses its sample rate, so AAC frames are exactly 1024 ticks and Opus
//! packets their sample count.

use super::BoxWriter;
use crate::codec::{AudioCodec, AudioConfig, VideoCodec, VideoConfig};
use bytes::Bytes;

/// Track id of the video track, when there is one.
pub(crate) const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track, when there is one (also without video, so names stay fixed).
pub(crate) const AUDIO_TRACK_ID: u32 = 2;
/// Ticks per second of the video track.
pub(crate) const VIDEO_TIMESCALE: u32 = 90_000;

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Builds `ftyp` + `moov` for the given tracks.
pub(crate) fn init_segment(video: Option<&VideoConfig>, audio: Option<&AudioConfig>) -> Bytes {
    let mut w = BoxWriter::with_capacity(1024);
    let ftyp = w.open(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
        w.bytes(brand);
    }
    w.close(ftyp);

    let moov = w.open(b"moov");
    mvhd(&mut w);
    if let Some(v) = video {
        trak(&mut w, Track::Video(v));
    }
    if let Some(a) = audio {
        trak(&mut w, Track::Audio(a));
    }
    let mvex = w.open(b"mvex");
    for id in [video.map(|_| VIDEO_TRACK_ID), audio.map(|_| AUDIO_TRACK_ID)]
        .into_iter()
        .flatten()
    {
        let trex = w.open_full(b"trex", 0, 0);
        w.u32(id);
        w.u32(1); // default_sample_description_index
        w.u32(0); // default_sample_duration
        w.u32(0); // default_sample_size
        w.u32(0); // default_sample_flags: sync samples unless a trun says otherwise
        w.close(trex);
    }
    w.close(mvex);
    w.close(moov);
    w.buf.freeze()
}

#[derive(Clone, Copy)]
enum Track<'a> {
    Video(&'a VideoConfig),
    Audio(&'a AudioConfig),
}

fn mvhd(w: &mut BoxWriter) {
    let b = w.open_full(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(1000); // timescale
    w.u32(0); // duration: unknown (live)
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    for m in MATRIX {
        w.u32(m);
    }
    w.zeros(24); // pre_defined
    w.u32(AUDIO_TRACK_ID + 1); // next_track_ID
    w.close(b);
}

fn trak(w: &mut BoxWriter, track: Track<'_>) {
    let (id, timescale, handler, name): (u32, u32, &[u8; 4], &[u8]) = match track {
        Track::Video(_) => (VIDEO_TRACK_ID, VIDEO_TIMESCALE, b"vide", b"Video\0"),
        Track::Audio(a) => (AUDIO_TRACK_ID, a.sample_rate, b"soun", b"Audio\0"),
    };
    let trak = w.open(b"trak");
    let tkhd = w.open_full(b"tkhd", 0, 0x000003); // enabled, in movie
    w.u32(0);
    w.u32(0);
    w.u32(id);
    w.u32(0); // reserved
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(if matches!(track, Track::Audio(_)) {
        0x0100
    } else {
        0
    });
    w.u16(0);
    for m in MATRIX {
        w.u32(m);
    }
    let (width, height) = match track {
        Track::Video(v) => (v.width, v.height),
        Track::Audio(_) => (0, 0),
    };
    w.u32(width.min(0xffff) << 16);
    w.u32(height.min(0xffff) << 16);
    w.close(tkhd);

    let mdia = w.open(b"mdia");
    let mdhd = w.open_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(timescale);
    w.u32(0);
    w.u16(0x55c4); // language "und"
    w.u16(0);
    w.close(mdhd);
    let hdlr = w.open_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(handler);
    w.zeros(12);
    w.bytes(name);
    w.close(hdlr);

    let minf = w.open(b"minf");
    match track {
        Track::Video(_) => {
            let vmhd = w.open_full(b"vmhd", 0, 1);
            w.zeros(8); // graphicsmode, opcolor
            w.close(vmhd);
        }
        Track::Audio(_) => {
            let smhd = w.open_full(b"smhd", 0, 0);
            w.zeros(4); // balance, reserved
            w.close(smhd);
        }
    }
    let dinf = w.open(b"dinf");
    let dref = w.open_full(b"dref", 0, 0);
    w.u32(1);
    let url = w.open_full(b"url ", 0, 1); // media in the same file
    w.close(url);
    w.close(dref);
    w.close(dinf);

    let stbl = w.open(b"stbl");
    let stsd = w.open_full(b"stsd", 0, 0);
    w.u32(1);
    match track {
        Track::Video(v) => visual_entry(w, v),
        Track::Audio(a) => audio_entry(w, a),
    }
    w.close(stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = w.open_full(kind, 0, 0);
        w.u32(0); // entry_count
        w.close(b);
    }
    let stsz = w.open_full(b"stsz", 0, 0);
    w.u32(0); // sample_size
    w.u32(0); // sample_count
    w.close(stsz);
    w.close(stbl);
    w.close(minf);
    w.close(mdia);
    w.close(trak);
}

/// VisualSampleEntry (14496-12 12.1.3) with the codec's configuration box.
fn visual_entry(w: &mut BoxWriter, v: &VideoConfig) {
    let (entry, config): (&[u8; 4], &[u8; 4]) = match v.codec {
        VideoCodec::Avc => (b"avc1", b"avcC"),
        VideoCodec::Hevc => (b"hvc1", b"hvcC"),
        VideoCodec::Av1 => (b"av01", b"av1C"),
    };
    let b = w.open(entry);
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(16); // pre_defined, reserved
    w.u16(v.width.min(0xffff) as u16);
    w.u16(v.height.min(0xffff) as u16);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0);
    w.u16(1); // frame_count
    w.zeros(32); // compressorname
    w.u16(0x0018); // depth
    w.u16(0xffff); // pre_defined = -1
    w.leaf(config, &v.record);
    w.close(b);
}

/// AudioSampleEntry (14496-12 12.2.3) with `esds` or `dOps`.
fn audio_entry(w: &mut BoxWriter, a: &AudioConfig) {
    let b = w.open(match a.codec {
        AudioCodec::Aac => b"mp4a",
        AudioCodec::Opus => b"Opus",
    });
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(8);
    w.u16(a.channels);
    w.u16(16); // samplesize
    w.zeros(4); // pre_defined, reserved
    w.u32(a.sample_rate.min(0xffff) << 16);
    match a.codec {
        AudioCodec::Aac => esds(w, &a.specific),
        AudioCodec::Opus => w.leaf(b"dOps", &a.specific),
    }
    w.close(b);
}

/// `esds`: ES_Descriptor ⊃ DecoderConfigDescriptor ⊃ DecoderSpecificInfo (the
/// AudioSpecificConfig), then SLConfigDescriptor (14496-1 7.2.6).
fn esds(w: &mut BoxWriter, asc: &[u8]) {
    let b = w.open_full(b"esds", 0, 0);
    let dsi_len = asc.len();
    let dcd_len = 13 + descriptor_len(dsi_len);
    let es_len = 3 + descriptor_len(dcd_len) + descriptor_len(1);
    descriptor_header(w, 0x03, es_len);
    w.u16(0); // ES_ID
    w.u8(0); // no dependence, URL or OCR stream
    descriptor_header(w, 0x04, dcd_len);
    w.u8(0x40); // objectTypeIndication: MPEG-4 Audio
    w.u8(0x15); // streamType 5 (audio) << 2 | reserved 1
    w.bytes(&[0, 0, 0]); // bufferSizeDB
    w.u32(0); // maxBitrate
    w.u32(0); // avgBitrate
    descriptor_header(w, 0x05, dsi_len);
    w.bytes(asc);
    descriptor_header(w, 0x06, 1);
    w.u8(0x02); // predefined: reserved for MP4 files
    w.close(b);
}

/// A descriptor's total size: tag + size bytes + payload.
fn descriptor_len(payload: usize) -> usize {
    1 + size_bytes(payload) + payload
}

fn size_bytes(payload: usize) -> usize {
    match payload {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        _ => 4,
    }
}

/// Tag and expandable size (7 bits per byte, high bit = more).
fn descriptor_header(w: &mut BoxWriter, tag: u8, payload: usize) {
    w.u8(tag);
    let n = size_bytes(payload);
    for i in (0..n).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        w.u8(more | ((payload >> (7 * i)) & 0x7f) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aac() -> AudioConfig {
        AudioConfig {
            codec: AudioCodec::Aac,
            sample_rate: 44100,
            channels: 2,
            codecs: "mp4a.40.2".into(),
            frame_samples: 1024,
            specific: Bytes::from_static(&[0x12, 0x10]),
        }
    }

    #[test]
    fn esds_bytes() {
        let mut w = BoxWriter::default();
        esds(&mut w, &[0x12, 0x10]);
        assert_eq!(
            &w.buf[..],
            &[
                0, 0, 0, 0x27, b'e', b's', b'd', b's', 0, 0, 0, 0, // full box header
                0x03, 0x19, 0, 0, 0, // ES_Descriptor
                0x04, 0x11, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfig
                0x05, 0x02, 0x12, 0x10, // DecoderSpecificInfo
                0x06, 0x01, 0x02, // SLConfig
            ][..]
        );
    }

    #[test]
    fn descriptor_sizes_past_127() {
        let mut w = BoxWriter::default();
        descriptor_header(&mut w, 5, 300);
        assert_eq!(&w.buf[..], &[5, 0x82, 0x2c]);
    }

    #[test]
    fn audio_only_init_layout() {
        let init = init_segment(None, Some(&aac()));
        // ftyp first, then moov whose size covers the rest.
        assert_eq!(&init[4..8], b"ftyp");
        let ftyp_len = u32::from_be_bytes(init[..4].try_into().unwrap()) as usize;
        assert_eq!(ftyp_len, 8 + 8 + 16);
        assert_eq!(&init[ftyp_len + 4..ftyp_len + 8], b"moov");
        let moov_len =
            u32::from_be_bytes(init[ftyp_len..ftyp_len + 4].try_into().unwrap()) as usize;
        assert_eq!(ftyp_len + moov_len, init.len());
        for kind in [&b"soun"[..], b"smhd", b"mp4a", b"esds", b"trex"] {
            assert!(init.windows(4).any(|w| w == kind), "{kind:?}");
        }
        assert!(!init.windows(4).any(|w| w == b"vide"));
    }
}
