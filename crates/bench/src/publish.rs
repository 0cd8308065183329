//! A publisher: an FLV file replayed in real time on one RTMP connection, looped, with
//! timestamps that keep increasing as a live encoder's would.

use crate::conn::{Conn, Role, Target};
use crate::flv;
use rtmp_proto::session::MediaKind;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Replays `tags` on a fresh publishing connection, looping, until the task is dropped.
pub(crate) async fn publish(
    target: Target,
    name: String,
    tags: Rc<Vec<flv::Tag>>,
    duration_ms: u32,
    origin_out: Rc<Cell<Option<Instant>>>,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(&target, Role::Publish, &name, None, Duration::from_secs(10)).await?;
    let origin = Instant::now() + Duration::from_millis(100);
    origin_out.set(Some(origin));
    for cycle in 0u32.. {
        // Timestamps keep increasing across loops, as a live encoder's would.
        let offset = cycle.wrapping_mul(duration_ms + 40);
        for tag in tags.iter() {
            if tag.kind == MediaKind::Metadata && cycle > 0 {
                continue;
            }
            let ts = tag.timestamp.wrapping_add(offset);
            let at = origin + Duration::from_millis(u64::from(ts));
            loop {
                tokio::select! {
                    biased;
                    () = tokio::time::sleep_until(at.into()) => break,
                    r = conn.readable() => {
                        r?;
                        conn.serve_ready().await?;
                    }
                }
            }
            // Script tags are `onMetaData, {…}`: the session wraps them in `@setDataFrame`.
            conn.send_media(tag.kind, ts, &tag.body).await?;
        }
    }
    Ok(())
}
