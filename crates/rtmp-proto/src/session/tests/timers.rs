//! The deadline table as the session drives it: handshake, publish idle, pings, write stall.

use super::*;

#[test]
fn handshake_timeout_when_nothing_happens() {
    let mut h = Harness::new(SessionConfig::default());
    assert_eq!(h.server.poll_timeout(), Some(h.at(10.0)));
    assert_eq!(h.server.handle_timeout(h.at(9.999)), None);
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
    assert_eq!(h.now, h.at(10.0));
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn handshake_timeout_covers_connect_without_publish() {
    let mut h = Harness::ready(Harness::quiet_config());
    h.advance(Duration::from_secs(3));
    h.call(0, "FCPublish", 5.0, vec![s("cam")]).unwrap();
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.at(10.0)),
        "bytes do not push it back"
    );
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn publish_idle_counts_from_the_last_byte() {
    let mut h = Harness::ready(Harness::quiet_config());
    h.advance(Duration::from_secs(2));
    h.call(1, "publish", 3.0, vec![s("cam")]).unwrap();
    h.events();
    h.advance(Duration::from_secs(1));
    h.server.accept_publish(h.now);
    // A publisher that never sends media is caught too: counted from the accept.
    assert_eq!(h.server.poll_timeout(), Some(h.at(33.0)));

    h.advance(Duration::from_secs(20));
    h.send(C_VIDEO, 1, &Message::Video(media(3, 0))).unwrap();
    assert_eq!(h.server.poll_timeout(), Some(h.at(53.0)));
    assert_eq!(h.server.handle_timeout(h.at(52.9)), None);

    h.advance(Duration::from_secs(29));
    h.send(C_VIDEO, 1, &Message::Video(media(3, 0))).unwrap();
    assert_eq!(h.server.poll_timeout(), Some(h.at(82.0)));
    assert_eq!(h.jump(), Some(CloseReason::PublishIdle));
    assert_eq!(h.now, h.at(82.0));
}

#[test]
fn ping_after_silence_then_timeout() {
    let mut h = Harness::ready(SessionConfig::default());
    h.call(1, "play", 0.0, vec![s("cam")]).unwrap();
    h.server.accept_play("cam", true);
    h.replies();
    // The last byte came at t0; the ping interval is 5 s.
    assert_eq!(h.server.poll_timeout(), Some(h.at(5.0)));
    assert_eq!(h.jump(), None);
    let replies = h.replies();
    assert_eq!(user_controls(&replies), [UserControl::PingRequest(5000)]);
    assert_eq!(replies[0].header.csid, CSID_CONTROL);
    assert_eq!(h.server.timers().get(Timer::PingTimeout), Some(h.at(15.0)));
    assert_eq!(h.server.poll_timeout(), Some(h.at(15.0)));
    assert_eq!(h.jump(), Some(CloseReason::PingTimeout));
    assert_eq!(h.now, h.at(15.0));
}

#[test]
fn ping_response_cancels_the_timeout() {
    let mut h = Harness::playing(SessionConfig::default());
    assert_eq!(h.jump(), None);
    let [UserControl::PingRequest(ts)] = user_controls(&h.replies())[..] else {
        panic!()
    };
    h.advance(Duration::from_secs(2));
    h.send(C_CONTROL, 0, &user_control(UserControl::PingResponse(ts)))
        .unwrap();
    assert_eq!(h.events(), [Event::PingResponse(ts)]);
    assert_eq!(h.server.timers().get(Timer::PingTimeout), None);
    // Next ping a full interval after that byte.
    assert_eq!(h.server.poll_timeout(), Some(h.at(12.0)));
    assert_eq!(h.jump(), None);
    assert_eq!(
        user_controls(&h.replies()),
        [UserControl::PingRequest(12_000)]
    );
}

#[test]
fn any_byte_cancels_the_ping_timeout() {
    let mut h = Harness::playing(SessionConfig::default());
    assert_eq!(h.jump(), None);
    h.replies();
    h.advance(Duration::from_secs(9));
    h.send(C_CONTROL, 0, &Message::Acknowledgement(1)).unwrap();
    assert_eq!(h.server.timers().get(Timer::PingTimeout), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(19.0)));
}

#[test]
fn explicit_ping_does_not_push_back_an_outstanding_timeout() {
    let mut h = Harness::playing(SessionConfig::default());
    h.server.send_ping(h.at(1.0));
    h.server.send_ping(h.at(4.0));
    assert_eq!(h.server.timers().get(Timer::PingTimeout), Some(h.at(11.0)));
    assert_eq!(
        user_controls(&h.replies()),
        [
            UserControl::PingRequest(1000),
            UserControl::PingRequest(4000)
        ]
    );
}

#[test]
fn publishers_are_judged_by_publish_idle_not_pings() {
    let mut h = Harness::publishing(SessionConfig::default());
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    h.advance(Duration::from_secs(1));
    h.send(C_VIDEO, 1, &Message::Video(media(3, 0))).unwrap();
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(31.0)));
    assert_eq!(h.jump(), Some(CloseReason::PublishIdle));
    assert!(h.replies().is_empty(), "never pinged");
}

#[test]
fn a_connection_that_stopped_publishing_gets_the_handshake_deadline_again() {
    // Publishing disarmed the handshake deadline; once the publish ends, a silent connection
    // must still have a deadline, or it lingers forever.
    let mut h = Harness::publishing(SessionConfig::default());
    h.advance(Duration::from_secs(1));
    h.call(1, "deleteStream", 4.0, vec![Value::number(1)])
        .unwrap();
    assert_eq!(h.events(), [Event::Unpublished]);
    assert_eq!(h.server.timers().get(Timer::PublishIdle), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(11.0)));
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
    assert!(user_controls(&h.replies()).is_empty(), "never pinged");
}

#[test]
fn a_connection_that_stopped_playing_is_no_longer_pinged() {
    let mut h = Harness::playing(SessionConfig::default());
    assert_eq!(h.jump(), None, "a player is pinged");
    assert_eq!(user_controls(&h.replies()).len(), 1);
    h.advance(Duration::from_secs(1));
    h.call(1, "closeStream", 0.0, vec![]).unwrap();
    assert_eq!(h.events(), [Event::PlayStopped]);
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    assert_eq!(h.server.timers().get(Timer::PingTimeout), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(16.0)));
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn connections_without_a_stream_are_never_pinged() {
    // Thousands of connected but idle clients must cost no wake-ups: the handshake deadline
    // alone bounds them, however long an operator sets it.
    let mut config = SessionConfig::default();
    config.timeouts.handshake = Duration::from_secs(3600);
    let mut h = Harness::ready(config);
    assert_eq!(h.server.timers().get(Timer::PingSend), None);
    assert_eq!(h.server.poll_timeout(), Some(h.at(3600.0)));
    assert_eq!(h.jump(), Some(CloseReason::HandshakeTimeout));
    assert!(h.replies().is_empty());
}

#[test]
fn play_stall_follows_write_progress() {
    let mut h = Harness::playing(Harness::quiet_config());
    h.server.on_write_state(h.at(1.0), true, false);
    assert_eq!(h.server.poll_timeout(), Some(h.at(11.0)));
    // Still stuck: the deadline stays where it was.
    h.server.on_write_state(h.at(5.0), true, false);
    assert_eq!(h.server.poll_timeout(), Some(h.at(11.0)));
    // Progress restarts it.
    h.server.on_write_state(h.at(6.0), true, true);
    assert_eq!(h.server.poll_timeout(), Some(h.at(16.0)));
    // Drained: cleared.
    h.server.on_write_state(h.at(7.0), false, true);
    assert_eq!(h.server.poll_timeout(), None);

    h.server.on_write_state(h.at(8.0), true, false);
    assert_eq!(h.server.handle_timeout(h.at(17.9)), None);
    h.now = h.at(8.0);
    assert_eq!(h.jump(), Some(CloseReason::PlayStall));
    assert_eq!(h.now, h.at(18.0));
}
