//! The client's deadline table as the session drives it: setup, media idle, write stall.

use super::*;
use std::time::Duration;

/// Jumps the clock to the next deadline and runs it, as a driver would.
fn jump(p: &mut Pair) -> Option<CloseReason> {
    let at = p.client.poll_timeout().expect("a deadline is armed");
    assert!(at >= p.now, "deadline in the past");
    p.now = at;
    p.client.handle_timeout(p.now)
}

#[test]
fn a_silent_server_is_given_up_after_the_setup_timeout() {
    let mut p = Pair::new(config());
    // The server never answers: nothing is delivered.
    assert_eq!(p.client.poll_timeout(), Some(p.at(10.0)));
    assert_eq!(p.client.handle_timeout(p.at(9.999)), None);
    assert_eq!(jump(&mut p), Some(CloseReason::HandshakeTimeout));
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn setup_covers_a_publish_the_server_never_answers() {
    let mut p = Pair::new(config());
    p.publish = Answer::Hold;
    p.advance(1.0);
    p.client.publish(p.now, "cam").unwrap();
    p.pump();
    assert_eq!(p.events().last(), Some(&ClientEvent::StreamCreated(1)));
    assert_eq!(p.client.state(), ClientState::Starting);
    assert_eq!(
        p.client.poll_timeout(),
        Some(p.at(10.0)),
        "counted from the start"
    );
    assert_eq!(jump(&mut p), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn connected_and_idle_has_no_deadline_until_a_request() {
    let mut p = Pair::new(config());
    p.pump();
    assert_eq!(p.client.state(), ClientState::Connected);
    assert_eq!(p.client.poll_timeout(), None);
    p.advance(30.0);
    p.play = Answer::Hold;
    p.client.play(p.now, "cam").unwrap();
    assert_eq!(p.client.poll_timeout(), Some(p.at(40.0)));
    p.pump();
    assert_eq!(jump(&mut p), Some(CloseReason::HandshakeTimeout));
    assert_eq!(p.now, p.at(40.0));
}

#[test]
fn a_player_without_media_is_closed_after_the_idle_timeout() {
    let mut p = Pair::playing(config());
    assert_eq!(p.client.timers().get(ClientTimer::Setup), None);
    assert_eq!(p.client.poll_timeout(), Some(p.at(10.0)));
    p.advance(3.0);
    p.server_media(MediaKind::Video, 0, &media(10, 0x17));
    assert_eq!(p.client.poll_timeout(), Some(p.at(13.0)));
    // Metadata is a sign of life too; control traffic is not.
    p.advance(1.0);
    p.server.send_ping(p.now);
    p.pump();
    assert_eq!(p.client.poll_timeout(), Some(p.at(13.0)));
    assert_eq!(p.client.handle_timeout(p.at(12.9)), None);
    assert_eq!(jump(&mut p), Some(CloseReason::MediaIdle));
    assert_eq!(p.now, p.at(13.0));
}

#[test]
fn media_idle_can_be_off_and_never_applies_to_publishers() {
    let mut cfg = config();
    cfg.timeouts.media_idle = None;
    let p = Pair::playing(cfg);
    assert_eq!(p.client.poll_timeout(), None);
    let p = Pair::publishing(config());
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn write_stall_follows_write_progress() {
    let mut p = Pair::publishing(config());
    p.client.on_write_state(p.at(1.0), true, false);
    assert_eq!(p.client.poll_timeout(), Some(p.at(11.0)));
    // Still stuck: the deadline stays.
    p.client.on_write_state(p.at(5.0), true, false);
    assert_eq!(p.client.poll_timeout(), Some(p.at(11.0)));
    // Progress restarts it; drained clears it.
    p.client.on_write_state(p.at(6.0), true, true);
    assert_eq!(p.client.poll_timeout(), Some(p.at(16.0)));
    p.client.on_write_state(p.at(7.0), false, true);
    assert_eq!(p.client.poll_timeout(), None);

    p.client.on_write_state(p.at(8.0), true, false);
    assert_eq!(p.client.handle_timeout(p.at(17.9)), None);
    p.now = p.at(8.0);
    assert_eq!(jump(&mut p), Some(CloseReason::WriteStall));
    assert!(CloseReason::WriteStall.wants_reset());
    assert_eq!(CloseReason::MediaIdle.label(), "media_idle");
}

#[test]
fn bounds_too_far_out_are_no_bounds() {
    let mut cfg = config();
    cfg.timeouts.setup = Duration::MAX;
    cfg.timeouts.media_idle = Some(Duration::MAX);
    cfg.timeouts.write_stall = Duration::MAX;
    let mut p = Pair::playing(cfg);
    p.client.on_write_state(p.now, true, false);
    assert_eq!(p.client.poll_timeout(), None);
}
