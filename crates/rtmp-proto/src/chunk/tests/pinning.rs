//! A message handed out must not keep the reader's input buffer alive: the server caches and
//! queues messages for seconds, and a pinned 64 KiB read buffer per message cost 2.8 MiB per
//! publisher before this was fixed.

use super::*;

#[test]
fn a_single_chunk_message_does_not_share_the_input_buffer() {
    let writer = ChunkWriter::default();
    let header = MessageHeader {
        csid: 6,
        timestamp: 0,
        type_id: 9,
        stream_id: 1,
    };
    let mut input = BytesMut::with_capacity(64 * 1024);
    writer.write(&header, &[7u8; 100], &mut input);
    writer.write(&header, &[8u8; 100], &mut input);
    let mut reader = ChunkReader::new(big_limits());
    let first = reader.read(&mut input).unwrap().unwrap();
    let second = reader.read(&mut input).unwrap().unwrap();
    assert_eq!(first.payload.as_ref(), &[7u8; 100][..]);
    assert_eq!(second.payload.as_ref(), &[8u8; 100][..]);
    assert!(input.is_empty());
    // With the messages still alive, the emptied buffer can be reused whole: nothing else
    // holds its allocation.
    assert!(input.try_reclaim(64 * 1024));
    drop((first, second));
}
