//! Claims, pure: the keys, what a claim holds, whose it is, and the newcomer's side of a
//! cross-node challenge as a state machine on an explicit clock.
//!
//! ```text
//! {prefix}/streams/{app}/{name}             {node, advertise, since}  under the owner's lease
//! {prefix}/nodes/{node}                     {node, advertise, since}  under the node's lease
//! {prefix}/challenges/{app}/{name}/{node}   {node, since}             under the asker's lease
//! ```

use super::etcd::Kv;
use crate::config::{OnDuplicate, PublishConfig};
use std::time::{Duration, Instant};

/// What the owner's node may take beyond `challenge_timeout` to see a challenge and answer it
/// (two etcd round trips and a watch event, with room to spare).
pub(crate) const CHALLENGE_SLACK: Duration = Duration::from_secs(1);

/// The keys of one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// Everything Lifeline writes: `{prefix}/`.
    pub(crate) fn all(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The claim of the stream `key` (`app/name`).
    pub(crate) fn stream(&self, key: &str) -> String {
        format!("{}/streams/{key}", self.prefix)
    }

    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.prefix)
    }

    /// `node`'s request that the owner of `key` challenge its publisher.
    pub(crate) fn challenge(&self, key: &str, node: &str) -> String {
        format!("{}/challenges/{key}/{node}", self.prefix)
    }

    /// What an etcd key is.
    pub(crate) fn parse<'a>(&self, etcd_key: &'a str) -> Option<Key<'a>> {
        let rest = etcd_key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        if let Some(stream) = rest.strip_prefix("streams/") {
            return stream.contains('/').then_some(Key::Stream(stream));
        }
        if let Some(node) = rest.strip_prefix("nodes/") {
            return Some(Key::Node(node));
        }
        let (stream, from) = rest.strip_prefix("challenges/")?.rsplit_once('/')?;
        stream
            .contains('/')
            .then_some(Key::Challenge { stream, from })
    }
}

/// One of our keys, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    /// A claim of `app/name`.
    Stream(&'a str),
    /// A node's registration.
    Node(&'a str),
    /// A challenge of `stream`'s owner, asked by node `from`.
    Challenge { stream: &'a str, from: &'a str },
}

/// What a claim (and a node's registration) holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimValue {
    /// The owner's node name.
    pub node: String,
    /// Its RTMP URL (`rtmp://host:port`).
    pub advertise: String,
    /// When it claimed (Unix ms).
    pub since: u64,
}

impl ClaimValue {
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Whose a claim is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Nobody claims the name.
    Free,
    /// Ours, under our current lease.
    Ours,
    /// Ours by name but under an older lease (before a re-join): to be deleted, then claimed.
    Stale { create_revision: i64 },
    /// Another node's.
    Other(ClaimValue),
}

/// Whose `kv` (the claim key, if it exists) is, for node `me` holding `lease`.
pub(crate) fn owner(kv: Option<&Kv>, me: &str, lease: i64) -> Owner {
    let Some(kv) = kv else { return Owner::Free };
    let value = ClaimValue::parse(&kv.value);
    let by_me = value.as_ref().is_some_and(|v| v.node == me);
    match value {
        _ if kv.lease == lease && lease != 0 => Owner::Ours,
        _ if by_me => Owner::Stale {
            create_revision: kv.create_revision,
        },
        Some(v) => Owner::Other(v),
        // Unreadable: someone else's (never deleted by us).
        None => Owner::Other(ClaimValue {
            node: "?".to_owned(),
            advertise: String::new(),
            since: 0,
        }),
    }
}

/// Why a newcomer's node gave up a name another node owns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// `[publish] on_duplicate = "reject"`.
    #[error("{key} is published on node {node} (on_duplicate is reject)")]
    Reject { key: String, node: String },
    /// The owner's node answered: its publisher is alive.
    #[error("{key} is published on node {node} (its publisher answered the challenge)")]
    Kept { key: String, node: String },
    /// The owner's node did not answer within challenge_timeout + 1 s.
    #[error("{key} is published on node {node}, which did not answer the challenge in time")]
    NoAnswer { key: String, node: String },
    /// No lease, or etcd failed.
    #[error("cluster: {0}")]
    Unavailable(String),
}

/// What the newcomer's node does next while it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AskStep {
    /// The name is free: create the claim.
    Claim,
    /// Ours after all.
    Granted,
    /// Look at the keys again at this instant.
    Poll(Instant),
    /// Refused.
    Refused(Refusal),
}

/// The newcomer's side of a cross-node challenge.
#[derive(Debug, Clone)]
pub(crate) struct Asking {
    key: String,
    deadline: Instant,
    poll: Duration,
}

impl Asking {
    /// Starts asking at `now` for `key`, under `policy`. `None` when the policy refuses at once.
    pub(crate) fn start(
        key: &str,
        owner: &ClaimValue,
        policy: &PublishConfig,
        now: Instant,
    ) -> Result<Self, Refusal> {
        if policy.on_duplicate == OnDuplicate::Reject {
            return Err(Refusal::Reject {
                key: key.to_owned(),
                node: owner.node.clone(),
            });
        }
        Ok(Self {
            key: key.to_owned(),
            deadline: now + policy.challenge_timeout + CHALLENGE_SLACK,
            poll: Duration::from_millis(100),
        })
    }

    #[cfg(test)]
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// What the keys look like at `now`: the claim's owner, and whether our challenge key
    /// is still there (the owner deletes it when it keeps the name).
    pub(crate) fn step(&self, owner: &Owner, challenge_pending: bool, now: Instant) -> AskStep {
        match owner {
            Owner::Free | Owner::Stale { .. } => AskStep::Claim,
            Owner::Ours => AskStep::Granted,
            Owner::Other(v) if !challenge_pending => AskStep::Refused(Refusal::Kept {
                key: self.key.clone(),
                node: v.node.clone(),
            }),
            Owner::Other(v) if now >= self.deadline => AskStep::Refused(Refusal::NoAnswer {
                key: self.key.clone(),
                node: v.node.clone(),
            }),
            Owner::Other(_) => AskStep::Poll((now + self.poll).min(self.deadline)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(node: &str, lease: i64) -> Kv {
        let v = ClaimValue {
            node: node.to_owned(),
            advertise: format!("rtmp://{node}:1935"),
            since: 1,
        };
        Kv {
            key: "/l/streams/live/a".to_owned(),
            value: v.to_bytes(),
            create_revision: 5,
            mod_revision: 5,
            lease,
        }
    }

    #[test]
    fn keys() {
        let k = Keys::new("/l/");
        assert_eq!(k.stream("live/cctv5"), "/l/streams/live/cctv5");
        assert_eq!(k.challenge("live/a/b", "n1"), "/l/challenges/live/a/b/n1");
        assert_eq!(
            k.parse("/l/streams/live/a/b"),
            Some(Key::Stream("live/a/b"))
        );
        assert_eq!(
            k.parse("/l/challenges/live/a/b/n1"),
            Some(Key::Challenge {
                stream: "live/a/b",
                from: "n1"
            })
        );
        assert_eq!(k.parse("/l/nodes/n1"), Some(Key::Node("n1")));
        assert_eq!(k.parse("/l/streams/nolive"), None);
        assert_eq!(k.parse("/l/challenges/live/n1"), None);
        assert_eq!(k.parse("/lx/streams/live/a"), None);
    }

    #[test]
    fn owners() {
        assert_eq!(owner(None, "a", 7), Owner::Free);
        assert_eq!(owner(Some(&kv("a", 7)), "a", 7), Owner::Ours);
        assert_eq!(
            owner(Some(&kv("a", 6)), "a", 7),
            Owner::Stale { create_revision: 5 },
            "our own claim from before a re-join"
        );
        assert!(matches!(owner(Some(&kv("b", 9)), "a", 7), Owner::Other(v) if v.node == "b"));
        let mut junk = kv("b", 9);
        junk.value = b"junk".to_vec();
        assert!(matches!(owner(Some(&junk), "a", 7), Owner::Other(_)));
        assert!(
            matches!(owner(Some(&kv("b", 0)), "a", 0), Owner::Other(_)),
            "no lease is nobody's lease"
        );
    }

    #[test]
    fn asking_across_nodes() {
        let t0 = Instant::now();
        let policy = PublishConfig::default();
        let b = ClaimValue::parse(&kv("b", 9).value).unwrap();
        let reject = PublishConfig {
            on_duplicate: OnDuplicate::Reject,
            ..policy.clone()
        };
        assert!(matches!(
            Asking::start("live/a", &b, &reject, t0),
            Err(Refusal::Reject { .. })
        ));
        let ask = Asking::start("live/a", &b, &policy, t0).unwrap();
        assert_eq!(ask.deadline(), t0 + Duration::from_secs(2));
        let other = Owner::Other(b);
        let ms = Duration::from_millis;
        assert_eq!(ask.step(&other, true, t0), AskStep::Poll(t0 + ms(100)));
        assert_eq!(
            ask.step(&other, true, t0 + ms(1950)),
            AskStep::Poll(t0 + ms(2000))
        );
        assert!(matches!(
            ask.step(&other, true, t0 + ms(2000)),
            AskStep::Refused(Refusal::NoAnswer { .. })
        ));
        assert!(matches!(
            ask.step(&other, false, t0 + ms(300)),
            AskStep::Refused(Refusal::Kept { .. })
        ));
        assert_eq!(ask.step(&Owner::Free, false, t0 + ms(300)), AskStep::Claim);
        assert_eq!(
            ask.step(&Owner::Free, true, t0 + ms(5000)),
            AskStep::Claim,
            "a name freed at any time is taken"
        );
        assert_eq!(ask.step(&Owner::Ours, true, t0), AskStep::Granted);
    }
}
