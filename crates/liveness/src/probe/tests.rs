//! The probe's decisions on an explicit clock: no root, no sockets.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn idle_info(idle_ms: u32) -> TcpInfo {
    TcpInfo {
        state: TcpState::Established,
        rtt_us: 300,
        rttvar_us: 150,
        rto_us: 204_000,
        unacked: 0,
        retransmits: 0,
        backoff: 0,
        probes: 0,
        total_retrans: 0,
        last_data_sent_ms: idle_ms,
        last_data_recv_ms: idle_ms,
        last_ack_recv_ms: idle_ms,
        notsent_bytes: Some(0),
        bytes_acked: Some(1000),
        bytes_received: Some(5000),
        snd_wnd: None,
    }
}

/// nginx's accepted socket: keepalive off, timings from the namespace's sysctls.
fn nginx_opts() -> KeepaliveOptions {
    KeepaliveOptions {
        keepalive: false,
        idle_s: 7200,
        interval_s: 75,
        count: 9,
        user_timeout_ms: 0,
    }
}

/// `info` as it reads `dt` later when nothing arrived meanwhile.
fn later(info: &TcpInfo, dt: Duration) -> TcpInfo {
    let d = u32::try_from(dt.as_millis()).unwrap();
    TcpInfo {
        last_ack_recv_ms: info.last_ack_recv_ms + d,
        last_data_recv_ms: info.last_data_recv_ms + d,
        last_data_sent_ms: info.last_data_sent_ms + d,
        ..info.clone()
    }
}

/// Feeds samples every POLL from `t0` while `sample(t)` gives the socket's state; returns the
/// verdict, when it came, and the times of forced probes.
fn run(
    probe: &mut Probe,
    t0: Duration,
    mut sample: impl FnMut(Duration, u32) -> TcpInfo,
) -> (Verdict, Duration, Vec<Duration>) {
    let mut reprobes = Vec::new();
    let mut t = t0;
    loop {
        t += POLL;
        match probe.step(t, &sample(t - t0, probe.forced_probes())) {
            Step::Wait => {}
            Step::Reprobe => reprobes.push(t - t0),
            Step::Decided(v) => return (v, t - t0, reprobes),
        }
        assert!(t - t0 < Duration::from_secs(3600), "never decided");
    }
}

#[test]
fn idle_socket_is_armed_to_probe_at_once_and_restored_exactly() {
    let before = idle_info(40_000);
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    assert_eq!(p.mode, Mode::Armed);
    assert_eq!(p.window, DEFAULT_WITHIN);
    assert_eq!(p.raised, None);
    assert_eq!(p.first_probe, Duration::ZERO);
    // Guard first, the probe-firing TCP_KEEPIDLE last; TCP_KEEPCNT is never touched.
    let guard = 40_000 + 2 * 3000 + 10_000;
    assert_eq!(
        p.arm,
        vec![
            SockOpt::UserTimeout(guard),
            SockOpt::KeepIntvl(1),
            SockOpt::KeepAlive(true),
            SockOpt::KeepIdle(1),
        ]
    );
    assert_eq!(
        p.restore,
        vec![
            SockOpt::KeepAlive(false),
            SockOpt::KeepIntvl(75),
            SockOpt::KeepIdle(7200),
            SockOpt::UserTimeout(0),
        ]
    );
    assert_eq!(p.reprobe, Some(SockOpt::KeepIdle(1)));
    assert_eq!(p.reprobe_every, Duration::from_millis(300));
}

#[test]
fn only_what_is_changed_is_restored() {
    // Lifeline's own defaults: keepalive on 30/10/3, user timeout 10 s. A larger user timeout
    // is kept, an interval already short is kept.
    let mine = KeepaliveOptions {
        keepalive: true,
        idle_s: 30,
        interval_s: 1,
        count: 3,
        user_timeout_ms: 3_600_000,
    };
    let p = plan(&mine, &idle_info(5000), DEFAULT_WITHIN).unwrap();
    assert_eq!(p.arm, vec![SockOpt::KeepIdle(1)]);
    assert_eq!(p.restore, vec![SockOpt::KeepIdle(30)]);
}

#[test]
fn alive_answer_to_the_first_probe() {
    let before = idle_info(40_000);
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    let t0 = Duration::from_secs(100);
    let mut probe = Probe::new(p, t0, &before);
    // The peer's ACK arrives 1 ms after arming: last_ack_recv drops to "just now".
    let (v, at, reprobes) = run(&mut probe, t0, |dt, _| {
        if dt >= 2 * POLL {
            TcpInfo {
                last_ack_recv_ms: u32::try_from((dt - MS).as_millis()).unwrap(),
                ..later(&before, dt)
            }
        } else {
            later(&before, dt)
        }
    });
    assert_eq!(
        v,
        Verdict::Alive {
            answered_after_ms: 1,
            answer: Answer::Ack
        }
    );
    assert_eq!(at, 2 * POLL);
    assert!(reprobes.is_empty());
}

#[test]
fn lost_probe_is_repeated_then_answered() {
    let before = idle_info(40_000);
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    let t0 = Duration::ZERO;
    let mut probe = Probe::new(p, t0, &before);
    // The first probe and the first forced repeat are lost; the second repeat is answered
    // 1 ms after it left.
    let mut answered: Option<Duration> = None;
    let (v, _, reprobes) = run(&mut probe, t0, |dt, forced| {
        if forced >= 2 && answered.is_none() {
            answered = Some(dt + MS);
        }
        let mut i = later(&before, dt);
        i.probes = u8::try_from(forced + 1).unwrap();
        if let Some(a) = answered.filter(|a| dt >= *a) {
            i.last_ack_recv_ms = u32::try_from((dt - a).as_millis()).unwrap();
            i.probes = 0;
        }
        i
    });
    assert_eq!(reprobes.len(), 2, "{reprobes:?}");
    assert_eq!(reprobes[0], Duration::from_millis(300));
    assert!(
        matches!(v, Verdict::Alive { answer: Answer::Ack, answered_after_ms } if answered_after_ms >= 600)
    );
}

#[test]
fn no_answer_is_dead_at_the_window_with_evidence() {
    let before = idle_info(40_000);
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    let t0 = Duration::from_secs(7);
    let mut probe = Probe::new(p, t0, &before);
    let (v, at, reprobes) = run(&mut probe, t0, |dt, forced| TcpInfo {
        probes: u8::try_from(forced + 1).unwrap(),
        ..later(&before, dt)
    });
    assert_eq!(at, DEFAULT_WITHIN);
    assert!(reprobes.len() >= 8, "lost probes repeated: {reprobes:?}");
    let Verdict::Dead(e) = v else { panic!("{v:?}") };
    assert_eq!(e.silent_ms, 43_000);
    assert_eq!(u32::from(e.probes), e.forced_probes + 1);
    assert!(e.repeated);
    assert!(e.to_string().contains("nothing heard for 43.0 s"), "{e}");
}

#[test]
fn an_old_packet_read_a_jiffy_younger_is_not_an_answer() {
    let before = idle_info(2000);
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    let mut probe = Probe::new(p, Duration::ZERO, &before);
    let (v, ..) = run(&mut probe, Duration::ZERO, |dt, forced| {
        let mut i = later(&before, dt);
        // HZ=100 rounding: up to 10 ms off, either way.
        i.last_ack_recv_ms -= 10;
        i.probes = u8::try_from(forced + 1).unwrap();
        i
    });
    assert!(matches!(v, Verdict::Dead(_)), "{v:?}");
}

#[test]
fn data_in_flight_is_watched_not_armed() {
    let mut before = idle_info(0);
    before.unacked = 3;
    before.last_ack_recv_ms = 5;
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    assert_eq!(p.mode, Mode::Watched);
    assert!(p.arm.is_empty() && p.restore.is_empty() && p.reprobe.is_none());
    // A live player: its ACK of our data arrives.
    let mut probe = Probe::new(p.clone(), Duration::ZERO, &before);
    let (v, ..) = run(&mut probe, Duration::ZERO, |dt, _| TcpInfo {
        bytes_acked: Some(1000 + 1448),
        last_ack_recv_ms: 2,
        ..later(&before, dt)
    });
    assert!(matches!(
        v,
        Verdict::Alive {
            answer: Answer::AckedData,
            ..
        }
    ));
    // A vanished player: retransmissions unanswered, never a forced probe.
    let mut probe = Probe::new(p, Duration::ZERO, &before);
    let (v, at, reprobes) = run(&mut probe, Duration::ZERO, |dt, _| TcpInfo {
        retransmits: u8::try_from(dt.as_millis() / 400).unwrap_or(9),
        backoff: u8::try_from(dt.as_millis() / 400).unwrap_or(9),
        ..later(&before, dt)
    });
    assert!(reprobes.is_empty());
    assert_eq!(at, DEFAULT_WITHIN);
    let Verdict::Dead(e) = v else { panic!("{v:?}") };
    assert_eq!((e.unacked, e.forced_probes), (3, 0));
    assert!(e.to_string().contains("3 segment(s) unacked"), "{e}");
}

#[test]
fn a_publisher_sending_data_is_alive_at_once() {
    let before = idle_info(3);
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    let mut probe = Probe::new(p, Duration::ZERO, &before);
    let (v, at, _) = run(&mut probe, Duration::ZERO, |_, _| TcpInfo {
        bytes_received: Some(6000),
        snd_wnd: None,
        last_data_recv_ms: 4,
        ..before.clone()
    });
    assert_eq!(
        v,
        Verdict::Alive {
            answered_after_ms: 6,
            answer: Answer::Data
        }
    );
    assert_eq!(at, POLL);
}

#[test]
fn window_raised_to_three_rtts_and_to_fit_a_late_first_probe() {
    let mut before = idle_info(10_000);
    before.rtt_us = 1_500_000;
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    assert_eq!(p.window, Duration::from_millis(4500));
    assert_eq!(p.raised, Some(WindowRaise::Rtt { rtt_us: 1_500_000 }));
    assert!(p.raised.unwrap().to_string().contains("1500.0 ms"));
    assert_eq!(p.reprobe_every, Duration::from_secs(3), "2 × RTT");
    // Heard from 0.2 s ago: the first probe leaves at 0.8 s; a 1 s window could not repeat it.
    let before = idle_info(200);
    let p = plan(&nginx_opts(), &before, Duration::from_secs(1)).unwrap();
    assert_eq!(p.first_probe, Duration::from_millis(800));
    assert_eq!(p.window, Duration::from_micros(800_000 + 200_000 + 900));
    assert_eq!(p.raised, Some(WindowRaise::FirstProbe { delay_ms: 800 }));
    // The same socket with the default window: nothing to raise.
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    assert_eq!((p.window, p.raised), (DEFAULT_WITHIN, None));
}

#[test]
fn refusals() {
    let i = idle_info(1000);
    assert!(matches!(
        plan(&nginx_opts(), &i, Duration::from_millis(50)),
        Err(PlanError::Window { .. })
    ));
    let closing = TcpInfo {
        state: TcpState::CloseWait,
        ..i.clone()
    };
    assert!(matches!(
        plan(&nginx_opts(), &closing, DEFAULT_WITHIN),
        Err(PlanError::NotEstablished { .. })
    ));
    let days = idle_info(25 * 24 * 3600 * 1000);
    assert!(matches!(
        plan(&nginx_opts(), &days, DEFAULT_WITHIN),
        Err(PlanError::IdleTooLong { .. })
    ));
    let zero_sysctl = KeepaliveOptions {
        idle_s: 0,
        ..nginx_opts()
    };
    assert!(matches!(
        plan(&zero_sysctl, &i, DEFAULT_WITHIN),
        Err(PlanError::Unrestorable { .. })
    ));
}

#[test]
fn a_socket_that_goes_away_is_not_judged() {
    let before = idle_info(5000);
    let p = plan(&nginx_opts(), &before, DEFAULT_WITHIN).unwrap();
    let mut probe = Probe::new(p, Duration::ZERO, &before);
    let (v, ..) = run(&mut probe, Duration::ZERO, |dt, _| TcpInfo {
        state: TcpState::Close,
        ..later(&before, dt)
    });
    assert_eq!(
        v,
        Verdict::Gone {
            state: TcpState::Close
        }
    );
}

/// The kernel's `tcp_keepalive_timer` (net/ipv4/tcp_timer.c) for a socket whose peer is gone,
/// with `opts` in force, idle for `idle` when armed at t = 0, and `TCP_KEEPIDLE` re-set at each
/// of `reprobes`. Returns when the kernel would abort it, if before `until`.
fn kernel_abort(
    opts: &KeepaliveOptions,
    idle: Duration,
    reprobes: &[Duration],
    until: Duration,
) -> Option<Duration> {
    let (keepidle, intvl) = (
        Duration::from_secs(opts.idle_s.into()),
        Duration::from_secs(opts.interval_s.into()),
    );
    let user_timeout = Duration::from_millis(opts.user_timeout_ms.into());
    let mut probes_out = 0u32;
    // Setting TCP_KEEPIDLE: timer at max(0, keepidle − elapsed).
    let rearm = |t: Duration| t + keepidle.saturating_sub(idle + t);
    let mut next = rearm(Duration::ZERO);
    let mut forced = reprobes.iter().copied().peekable();
    loop {
        if let Some(&r) = forced.peek()
            && r <= next
        {
            forced.next();
            next = rearm(r);
            continue;
        }
        let t = next;
        if t >= until {
            return None;
        }
        let elapsed = idle + t;
        if elapsed >= keepidle {
            let abort = if !user_timeout.is_zero() {
                elapsed >= user_timeout && probes_out > 0
            } else {
                probes_out >= opts.count
            };
            if abort {
                return Some(t);
            }
            probes_out += 1;
            next = t + intvl;
        } else {
            next = t + (keepidle - elapsed);
        }
    }
}

fn applied(saved: &KeepaliveOptions, opts: &[SockOpt]) -> KeepaliveOptions {
    let mut o = *saved;
    for s in opts {
        match *s {
            SockOpt::KeepAlive(on) => o.keepalive = on,
            SockOpt::KeepIdle(v) => o.idle_s = v,
            SockOpt::KeepIntvl(v) => o.interval_s = v,
            SockOpt::KeepCnt(v) => o.count = v,
            SockOpt::UserTimeout(v) => o.user_timeout_ms = v,
        }
    }
    o
}

#[test]
fn the_plan_can_never_abort_within_the_window() {
    let originals = [
        nginx_opts(),
        // Aggressive originals: the most dangerous to combine with fast probes.
        KeepaliveOptions {
            keepalive: true,
            idle_s: 1,
            interval_s: 1,
            count: 1,
            user_timeout_ms: 0,
        },
        KeepaliveOptions {
            keepalive: true,
            idle_s: 30,
            interval_s: 10,
            count: 3,
            user_timeout_ms: 1000,
        },
        KeepaliveOptions {
            keepalive: false,
            idle_s: 5,
            interval_s: 2,
            count: 1,
            user_timeout_ms: 200,
        },
    ];
    let idles_ms = [
        0u32,
        200,
        999,
        1000,
        5000,
        60_000,
        3_600_000,
        10 * 86_400_000,
    ];
    let windows = [
        MIN_WITHIN,
        Duration::from_secs(1),
        DEFAULT_WITHIN,
        MAX_WITHIN,
    ];
    for saved in &originals {
        for &idle_ms in &idles_ms {
            for &within in &windows {
                let before = idle_info(idle_ms);
                let p = plan(saved, &before, within).unwrap();
                // The watch as it runs against a dead peer: every forced probe it asks for.
                let mut probe = Probe::new(p.clone(), Duration::ZERO, &before);
                let (v, decided, reprobes) =
                    run(&mut probe, Duration::ZERO, |dt, forced| TcpInfo {
                        probes: u8::try_from(forced + 1).unwrap_or(u8::MAX),
                        ..later(&before, dt)
                    });
                assert!(matches!(v, Verdict::Dead(_)));
                let armed = applied(saved, &p.arm);
                let safe_until = decided + restore_margin(p.window);
                let idle = Duration::from_millis(idle_ms.into());
                assert_eq!(
                    kernel_abort(&armed, idle, &reprobes, safe_until),
                    None,
                    "{saved:?} idle {idle_ms} ms window {within:?}: {p:?}"
                );
                // And it puts back exactly what it found.
                assert_eq!(applied(&armed, &p.restore), *saved);
            }
        }
    }
    // The model is not vacuous: nginx's options with a user timeout of 1 s and a forced probe
    // abort a long-idle dead peer at once.
    let risky = KeepaliveOptions {
        keepalive: true,
        idle_s: 1,
        user_timeout_ms: 1000,
        ..nginx_opts()
    };
    assert!(kernel_abort(&risky, Duration::from_secs(60), &[100 * MS], DEFAULT_WITHIN).is_some());
}
