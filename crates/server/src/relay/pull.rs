//! A pull's side: the origin's media published locally through the registry, exactly as a
//! publishing connection's (players, GOP cache, HLS), under the pull's hold on the name (see
//! `hold`). A local publisher always wins the name; the supervisor then ends this connection
//! with `taken_over`.

use super::core::{RelayConn, Side};
use super::hold::{self, Claim};
use rtmp_proto::session::{CloseReason, Media};
use std::time::Instant;

impl RelayConn {
    /// A media message from the origin; the first one of the connection starts its era.
    pub(super) fn pull_media(&mut self, now: Instant, media: Media) {
        if self.closing.is_some() {
            return;
        }
        let Side::Pull { hold, media: seen } = &mut self.side else {
            return;
        };
        if !*seen {
            // A hold whose name was taken meanwhile (kicked) is worth nothing: claim afresh.
            if hold.as_ref().is_some_and(|h| !h.is_current()) {
                *hold = None;
            }
            if hold.is_none() {
                let cancel = self.deps.shutdown.child_token();
                match hold::claim(&self.deps, &self.handle, cancel, now) {
                    Claim::Held(h) => *hold = Some(h),
                    Claim::Limit(why) => {
                        return self
                            .close(CloseReason::Refused(format!("local stream: {why}")), now);
                    }
                    Claim::Busy => {
                        tracing::info!(conn = self.control.id, relay = self.handle.id, stream = %self.handle.key, "a local publisher holds the name: the pull yields");
                        return self.close(CloseReason::TakenOver, now);
                    }
                }
            }
            *seen = true;
            if let Some(h) = hold.as_mut() {
                h.begin_connection();
            }
            self.went_live(now);
        }
        if let Side::Pull { hold: Some(h), .. } = &self.side {
            h.publish(media);
        }
    }
}
