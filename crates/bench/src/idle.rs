//! `idle`: connections that only handshake and `connect`, then stay, to measure what an idle
//! connection costs the server (RSS per connection, CPU while idle).

use crate::conn::{Conn, Role};
use crate::stats::proc_sample;
use crate::{IdleArgs, cpu_pct, gate, parse_url, sample};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub(crate) async fn idle(args: IdleArgs) -> anyhow::Result<String> {
    let (target, name) = parse_url(&args.common.url, &args.common)?;
    let pid = args.common.server_pid;
    let base = sample(pid);
    let gate = gate(args.common.concurrency);
    let ready = Rc::new(Cell::new(0usize));
    let ended = Rc::new(Cell::new(0usize));
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let t_open = Instant::now();
    for _ in 0..args.connections {
        let (target, name, gate, ready, ended, errors) = (
            target.clone(),
            name.clone(),
            gate.clone(),
            ready.clone(),
            ended.clone(),
            errors.clone(),
        );
        tokio::task::spawn_local(async move {
            let permit = gate.acquire().await;
            let opened =
                Conn::open(&target, Role::Idle, &name, None, Duration::from_secs(30)).await;
            drop(permit);
            let result = match opened {
                Ok(conn) => {
                    ready.set(ready.get() + 1);
                    conn.run().await
                }
                Err(e) => Err(e),
            };
            ended.set(ended.get() + 1);
            if let Err(e) = result {
                let mut errors = errors.borrow_mut();
                if errors.len() < 5 {
                    errors.push(format!("{e:#}"));
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.get() + ended.get() < args.connections && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_s = t_open.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (gen0, srv0) = (proc_sample("self"), sample(pid));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let wall = t0.elapsed();
    let (gen1, srv1) = (proc_sample("self"), sample(pid));
    let open = ready.get().saturating_sub(ended.get());
    let rss_per_conn = match (base, srv1) {
        (Some(b), Some(a)) if open > 0 => {
            Some(a.rss_kib.saturating_sub(b.rss_kib) as f64 / open as f64)
        }
        _ => None,
    };
    let report = serde_json::json!({
        "mode": "idle",
        "server": args.common.server,
        "url": args.common.url,
        "connections": args.connections,
        "connected": ready.get(),
        "open_at_end": open,
        "open_s": open_s,
        "hold_s": wall.as_secs_f64(),
        "server_rss_kib_before": base.map(|s| s.rss_kib),
        "server_rss_kib": srv1.map(|s| s.rss_kib),
        "server_rss_kib_per_conn": rss_per_conn,
        "server_cpu_pct": cpu_pct(srv0, srv1, wall),
        "generator_cpu_pct": cpu_pct(gen0, gen1, wall),
        "generator_rss_kib": gen1.map(|s| s.rss_kib),
        "errors": *errors.borrow(),
    });
    Ok(if args.common.json {
        report.to_string()
    } else {
        serde_json::to_string_pretty(&report)?
    })
}
