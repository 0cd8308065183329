//! `[cluster]`: several Lifeline nodes share one name space through etcd (see docs/cluster.md).
//! Off unless `etcd` lists at least one endpoint; then every publish claims its name in etcd
//! under this node's lease, and a node that cannot renew its lease stops its publishers.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::time::Duration;

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// etcd v3 client endpoints (`http://host:2379`); empty: no cluster, no etcd traffic.
    pub etcd: Vec<String>,
    /// This node's name in the cluster (unique); empty: the host name.
    pub node: String,
    /// The RTMP URL other nodes reach this node at (`rtmp://10.0.0.5:1935`); empty: the RTMP
    /// listen address, or the host name when it listens on every address.
    pub advertise: String,
    /// The etcd lease's TTL: a node that cannot renew it for this long has lost its names.
    #[serde(deserialize_with = "super::duration")]
    pub lease_ttl: Duration,
    /// The key prefix of every key Lifeline writes.
    pub prefix: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            etcd: Vec::new(),
            node: String::new(),
            advertise: String::new(),
            lease_ttl: Duration::from_secs(5),
            prefix: "/lifeline".to_owned(),
        }
    }
}

impl ClusterConfig {
    /// Whether the cluster is on.
    pub fn enabled(&self) -> bool {
        !self.etcd.is_empty()
    }

    /// The prefix without a trailing `/`.
    pub fn prefix(&self) -> &str {
        self.prefix.trim_end_matches('/')
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(Duration::from_secs(2)..=Duration::from_secs(300)).contains(&self.lease_ttl) {
            return Err(invalid("cluster.lease_ttl", "must be 2s..=300s"));
        }
        for e in &self.etcd {
            if super::parse_url(e).is_err() {
                return Err(invalid(
                    "cluster.etcd",
                    format!("{e:?} is not an http://host:port endpoint (TLS is not supported)"),
                ));
            }
        }
        if !self.prefix.starts_with('/') || self.prefix().is_empty() {
            return Err(invalid(
                "cluster.prefix",
                "must start with / and name something",
            ));
        }
        if self.node.contains('/') {
            return Err(invalid("cluster.node", "must not contain /"));
        }
        if !self.advertise.is_empty() {
            let probe = format!("{}/app/name", self.advertise.trim_end_matches('/'));
            if let Err(e) = super::RelayUrl::parse(&probe) {
                return Err(invalid(
                    "cluster.advertise",
                    format!("{:?}: {e}", self.advertise),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn off_by_default_and_checked() {
        assert!(!Config::default().cluster.enabled());
        let c = Config::from_toml(
            "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"a\"\n\
             advertise = \"rtmp://192.0.2.10:1935\"\nlease_ttl = \"3s\"\nprefix = \"/x/\"\n",
        )
        .unwrap();
        assert!(c.cluster.enabled());
        assert_eq!(c.cluster.prefix(), "/x");
        for bad in [
            "lease_ttl = \"1s\"",
            "etcd = [\"https://e:2379\"]",
            "prefix = \"x\"",
            "node = \"a/b\"",
            "advertise = \"http://a\"",
        ] {
            let err = Config::from_toml(&format!("[cluster]\n{bad}\n")).unwrap_err();
            assert!(err.to_string().contains("cluster."), "{bad}: {err}");
        }
    }
}
