//! How the client reads the server's answers: refusals with the server's words, stream ids,
//! and calls and errors that concern someone else.

use super::*;

#[test]
fn refused_publish_surfaces_code_and_description() {
    let mut p = Pair::new(config());
    p.publish = Answer::Reject("cam is already live");
    p.client.publish(p.now, "cam").unwrap();
    p.pump();
    let events = p.events();
    assert_eq!(
        events.last(),
        Some(&ClientEvent::Refused {
            code: "NetStream.Publish.BadName".into(),
            description: "cam is already live".into()
        })
    );
    assert_eq!(p.client.state(), ClientState::Refused);
    assert_eq!(p.client.poll_timeout(), None, "nothing left to wait for");
    assert_eq!(p.client.publish(p.now, "other"), Err(ClientError::Refused));
}

#[test]
fn refused_play_and_refused_connect() {
    let mut p = Pair::new(config());
    p.play = Answer::Reject("no such stream");
    p.client.play(p.now, "cam").unwrap();
    p.pump();
    assert_eq!(status_codes(&p.events()), ["NetStream.Play.Failed"]);

    // An `_error` answer to connect, as servers reject an app.
    let t0 = Instant::now();
    let mut client = ClientSession::with_rng(config(), t0, rng(1));
    let mut c0c1 = BytesMut::from(&client.take_output().unwrap()[..]);
    let mut s0s1s2 = BytesMut::new();
    ServerHandshake::with_rng(rng(2))
        .process(&mut c0c1, &mut s0s1s2)
        .unwrap();
    client.feed(t0, &s0s1s2).unwrap();
    assert_eq!(client.state(), ClientState::Connecting);
    let info = Command::status_info("error", "NetConnection.Connect.Rejected", "no such app");
    let (type_id, body) = Message::Command(Command::error(1.0, Value::Null, info)).encode();
    let header = MessageHeader {
        csid: 3,
        timestamp: 0,
        type_id,
        stream_id: 0,
    };
    client
        .feed(t0, &ChunkWriter::default().encode(&header, &body))
        .unwrap();
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Refused {
            code: "NetConnection.Connect.Rejected".into(),
            description: "no such app".into()
        })
    );
    assert_eq!(client.state(), ClientState::Refused);
}

/// A client past the handshake and `connect`, talking to a scripted server.
fn scripted(goal_play: bool) -> ClientSession {
    let t0 = Instant::now();
    let mut client = ClientSession::with_rng(config(), t0, rng(1));
    if goal_play {
        client.play(t0, "cam").unwrap();
    } else {
        client.create_stream(t0).unwrap();
    }
    let mut c0c1 = BytesMut::from(&client.take_output().unwrap()[..]);
    let mut s0s1s2 = BytesMut::new();
    ServerHandshake::with_rng(rng(2))
        .process(&mut c0c1, &mut s0s1s2)
        .unwrap();
    client.feed(t0, &s0s1s2).unwrap();
    let ok = Command::result(1.0, Value::Null, Value::Null);
    script(&mut client, &[Message::Command(ok)]);
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Connected { .. })
    ));
    client
}

/// Feeds `messages` to the client as a server on chunk stream 3 would send them.
fn script(client: &mut ClientSession, messages: &[Message]) {
    let mut bytes = BytesMut::new();
    for m in messages {
        let (type_id, body) = m.encode();
        let header = MessageHeader {
            csid: 3,
            timestamp: 0,
            type_id,
            stream_id: 0,
        };
        ChunkWriter::default().write(&header, &body, &mut bytes);
    }
    client.feed(Instant::now(), &bytes).unwrap();
}

#[test]
fn stream_ids_in_either_place_and_bad_ones_refused() {
    // createStream is transaction 2. Some servers leave out the null command object.
    let mut client = scripted(false);
    let bare = Command::from_values(vec![
        Value::string("_result"),
        Value::number(2),
        Value::number(7),
    ])
    .unwrap();
    script(&mut client, &[Message::Command(bare)]);
    assert_eq!(client.poll_event(), Some(ClientEvent::StreamCreated(7)));
    assert_eq!(client.stream_id(), Some(7));

    for bad in [
        Value::number(0),
        Value::number(1.5),
        Value::number(-3),
        Value::Null,
    ] {
        let mut client = scripted(false);
        let reply = Message::Command(Command::result(2.0, Value::Null, bad));
        let (type_id, body) = reply.encode();
        let header = MessageHeader {
            csid: 3,
            timestamp: 0,
            type_id,
            stream_id: 0,
        };
        let err = client
            .feed(
                Instant::now(),
                &ChunkWriter::default().encode(&header, &body),
            )
            .unwrap_err();
        assert!(
            matches!(err, ProtocolError::UnexpectedCommand { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn answers_to_other_requests_and_unknown_calls_are_ignored() {
    let mut client = scripted(true);
    // releaseStream refused, onBWDone and _checkbw called: none is a refusal.
    let info = Command::status_info("error", "NetConnection.Call.Failed", "no");
    script(
        &mut client,
        &[
            Message::Command(Command::error(9.0, Value::Null, info)),
            Message::Command(Command::on_bw_done()),
            Message::Command(Command::new("_checkbw", 0.0, Value::Null, vec![])),
        ],
    );
    assert_eq!(client.poll_event(), None);
    assert_eq!(client.state(), ClientState::Starting);
}
