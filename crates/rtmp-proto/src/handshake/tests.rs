//! Handshake tests: plain and digest forms, split feeding, hostile input.

use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn seeded(seed: u64) -> HandshakeRng {
    HandshakeRng::from_rng(StdRng::seed_from_u64(seed))
}

fn random_block() -> [u8; HANDSHAKE_SIZE] {
    seeded(99).block()
}

/// Runs server and client against each other, moving `step` bytes at a time each way.
fn run_pair(step: usize, trailer: &[u8]) -> (BytesMut, BytesMut) {
    let mut server = ServerHandshake::new();
    let mut client = ClientHandshake::default();
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    client.start(&mut to_server);
    let (mut server_in, mut client_in) = (BytesMut::new(), BytesMut::new());
    let (mut server_done, mut client_done) = (false, false);
    let mut trailer_sent = false;
    for _ in 0..100_000 {
        let n = step.min(to_server.len());
        server_in.extend_from_slice(&to_server.split_to(n));
        if !server_done {
            server_done =
                server.process(&mut server_in, &mut to_client).unwrap() == HandshakeProgress::Done;
        }
        let n = step.min(to_client.len());
        client_in.extend_from_slice(&to_client.split_to(n));
        if !client_done {
            client_done =
                client.process(&mut client_in, &mut to_server).unwrap() == HandshakeProgress::Done;
        }
        if client_done && !trailer_sent {
            // The client's first chunks follow C2 immediately.
            to_server.extend_from_slice(trailer);
            trailer_sent = true;
        }
        if server_done && client_done && to_server.is_empty() && to_client.is_empty() {
            return (server_in, client_in);
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn pair_completes_in_one_go() {
    let (server_left, client_left) = run_pair(usize::MAX, b"chunks");
    assert_eq!(&server_left[..], b"chunks");
    assert!(client_left.is_empty());
}

#[test]
fn pair_completes_byte_at_a_time() {
    let (server_left, client_left) = run_pair(1, b"first chunk bytes");
    assert_eq!(&server_left[..], b"first chunk bytes");
    assert!(client_left.is_empty());
}

fn plain_c0c1() -> BytesMut {
    let mut out = BytesMut::new();
    ClientHandshake::default().start(&mut out);
    out
}

#[test]
fn plain_s2_echoes_c1_and_leftover_is_kept() {
    let mut server = ServerHandshake::new();
    let mut input = plain_c0c1();
    let c1 = input[1..].to_vec();
    let mut out = BytesMut::new();
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeProgress::InProgress)
    );
    assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
    assert_eq!(out[0], 3);
    assert_eq!(&out[5..9], &[0; 4]);
    assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    assert_eq!(server.digest_schema(), None);
    input.extend_from_slice(&[0x55; HANDSHAKE_SIZE]);
    input.extend_from_slice(&[1, 2, 3]);
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeProgress::Done)
    );
    assert_eq!(&input[..], &[1, 2, 3]);
    // Done is sticky and leaves further input alone.
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeProgress::Done)
    );
    assert_eq!(&input[..], &[1, 2, 3]);
}

#[test]
fn bad_version_rejected() {
    let mut server = ServerHandshake::new();
    let mut input = BytesMut::from(&[6u8][..]);
    assert_eq!(
        server.process(&mut input, &mut BytesMut::new()),
        Err(HandshakeError::UnsupportedVersion(6))
    );
    let mut client = ClientHandshake::default();
    let mut input = BytesMut::from(&[0x16u8, 3, 1][..]);
    assert_eq!(
        client.process(&mut input, &mut BytesMut::new()),
        Err(HandshakeError::UnsupportedVersion(0x16))
    );
}

#[test]
fn truncated_input_stays_in_progress() {
    let full = plain_c0c1();
    for len in [0, 1, 100, HANDSHAKE_SIZE] {
        let mut server = ServerHandshake::new();
        let mut input = BytesMut::from(&full[..len]);
        let mut out = BytesMut::new();
        assert_eq!(
            server.process(&mut input, &mut out),
            Ok(HandshakeProgress::InProgress)
        );
        assert!(out.is_empty());
        assert_eq!(
            input.len(),
            len,
            "nothing consumed before C0+C1 are complete"
        );
    }
    let mut server = ServerHandshake::new();
    let mut input = full.clone();
    let mut out = BytesMut::new();
    server.process(&mut input, &mut out).unwrap();
    input.extend_from_slice(&[0; HANDSHAKE_SIZE - 1]);
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeProgress::InProgress)
    );
    assert_eq!(input.len(), HANDSHAKE_SIZE - 1);
}

/// A C1 as Flash Player builds it: non-zero version, digest at the schema's offset.
fn digest_c1(schema: DigestSchema) -> ([u8; HANDSHAKE_SIZE], [u8; DIGEST_LEN]) {
    let mut c1 = random_block();
    c1[..4].copy_from_slice(&1234u32.to_be_bytes());
    c1[4..8].copy_from_slice(&[0x80, 0x00, 0x07, 0x02]);
    // Computed independently of `sign_block`: the digest covers C1 minus its 32 bytes.
    let offset = schema.offset(&c1);
    let mut rest = c1[..offset].to_vec();
    rest.extend_from_slice(&c1[offset + DIGEST_LEN..]);
    let mut mac = Hmac::<Sha256>::new_from_slice(&fp_key()[..30]).unwrap();
    mac.update(&rest);
    let digest: [u8; DIGEST_LEN] = mac.finalize().into_bytes().into();
    c1[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
    (c1, digest)
}

#[test]
fn complex_handshake_signs_s1_and_s2() {
    for schema in [DigestSchema::Schema0, DigestSchema::Schema1] {
        let (c1, client_digest) = digest_c1(schema);
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_slice(&c1);
        let mut server = ServerHandshake::new();
        let mut out = BytesMut::new();
        assert_eq!(
            server.process(&mut input, &mut out),
            Ok(HandshakeProgress::InProgress)
        );
        assert_eq!(server.digest_schema(), Some(schema));
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        let s1 = &out[1..1 + HANDSHAKE_SIZE];
        let s2 = &out[1 + HANDSHAKE_SIZE..];

        assert_ne!(&s1[4..8], &[0; 4]);
        let offset = schema.offset(s1);
        let mut mac = Hmac::<Sha256>::new_from_slice(&fms_key()[..36]).unwrap();
        mac.update(&s1[..offset]);
        mac.update(&s1[offset + DIGEST_LEN..]);
        mac.verify_slice(&s1[offset..offset + DIGEST_LEN]).unwrap();

        let mut mac = Hmac::<Sha256>::new_from_slice(&fms_key()).unwrap();
        mac.update(&client_digest);
        let key = mac.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(&s2[..HANDSHAKE_SIZE - DIGEST_LEN]);
        mac.verify_slice(&s2[HANDSHAKE_SIZE - DIGEST_LEN..])
            .unwrap();
        assert_ne!(s2, &c1[..], "digest S2 is not an echo");
    }
}

#[test]
fn non_zero_version_without_digest_falls_back_to_plain() {
    let mut c1 = random_block();
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    let mut input = BytesMut::new();
    input.put_u8(3);
    input.put_slice(&c1);
    let mut server = ServerHandshake::new();
    let mut out = BytesMut::new();
    server.process(&mut input, &mut out).unwrap();
    assert_eq!(server.digest_schema(), None);
    assert_eq!(&out[5..9], &[0; 4]);
    assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
}

#[test]
fn keys_are_the_published_text_and_tail() {
    // The S1 digest is keyed with the text part alone, S2 with text + tail; a typo in
    // either breaks every Flash Player client, so check the bytes, not just the lengths.
    let fms = fms_key();
    assert_eq!(&fms[..36], b"Genuine Adobe Flash Media Server 001");
    assert_eq!(&fms[36..], &KEY_TAIL);
    let fp = fp_key();
    assert_eq!(&fp[..30], b"Genuine Adobe Flash Player 001");
    assert_eq!(&fp[30..], &KEY_TAIL);
    assert_eq!(&KEY_TAIL[..4], &[0xF0, 0xEE, 0xC2, 0x4A]);
    assert_eq!(&KEY_TAIL[28..], &[0xCF, 0xEB, 0x31, 0xAE]);
}

/// One plain handshake between seeded peers: C0+C1, S0+S1+S2, C2 as sent on the wire.
fn seeded_exchange(client_seed: u64, server_seed: u64) -> (BytesMut, BytesMut, BytesMut) {
    let mut client = ClientHandshake::with_rng(seeded(client_seed));
    let mut server = ServerHandshake::with_rng(seeded(server_seed));
    let mut c0c1 = BytesMut::new();
    client.start(&mut c0c1);
    let (mut input, mut s0s1s2) = (c0c1.clone(), BytesMut::new());
    server.process(&mut input, &mut s0s1s2).unwrap();
    let (mut input, mut c2) = (s0s1s2.clone(), BytesMut::new());
    assert_eq!(
        client.process(&mut input, &mut c2).unwrap(),
        HandshakeProgress::Done
    );
    assert!(client.is_done());
    let mut input = c2.clone();
    assert_eq!(
        server.process(&mut input, &mut BytesMut::new()).unwrap(),
        HandshakeProgress::Done
    );
    (c0c1, s0s1s2, c2)
}

#[test]
fn seeded_plain_handshake_echoes_c1_and_s1() {
    let (c0c1, s0s1s2, c2) = seeded_exchange(1, 2);
    assert_eq!(c0c1[0], 3);
    let c1 = &c0c1[1..];
    assert_eq!(&c1[..8], &[0; 8], "plain C1: time 0, zero version");
    assert_eq!(s0s1s2[0], 3);
    let s1 = &s0s1s2[1..=HANDSHAKE_SIZE];
    let s2 = &s0s1s2[1 + HANDSHAKE_SIZE..];
    assert_eq!(&s1[..8], &[0; 8], "plain S1: time 0, zero version");
    assert_eq!(s2, c1, "S2 echoes C1");
    assert_eq!(&c2[..], s1, "C2 echoes S1");
    // The filler is the injected generator's output, so a seed replays the exchange.
    let mut filler = [0; HANDSHAKE_SIZE];
    seeded(1).fill(&mut filler);
    assert_eq!(&c1[8..], &filler[8..]);
    assert_eq!(seeded_exchange(1, 2), (c0c1.clone(), s0s1s2.clone(), c2));
    let (other, _, _) = seeded_exchange(3, 2);
    assert_ne!(other, c0c1, "another seed, other bytes");
    assert!(c1[8..].iter().any(|&b| b != 0), "the filler is random");
}
