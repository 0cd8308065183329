//! A small etcd v3 client on etcd's JSON gRPC gateway (`POST /v3/kv/txn`, `/v3/lease/…`,
//! `/v3/watch`), over the hyper HTTP/1 client the hooks already use.
//!
//! Why not a gRPC client crate: the well-known one (`etcd-client`) generates its code with
//! `tonic-build` at build time and needs `protoc` installed, which would break `cargo run` on a
//! fresh machine with only the Rust toolchain; the crates that ship generated code are
//! unmaintained. The gateway is part of every etcd v3 server (on the client port), speaks plain
//! JSON, and the handful of calls Lifeline needs fit in this module.
//!
//! Every call takes a hard deadline: etcd slow or gone costs the caller at most that, and no
//! call is ever made from a connection's task or the accept loop.

mod json;
mod watch;

pub(crate) use json::Kv;
pub(crate) use watch::{Watch, WatchEvent};

use bytes::{Buf, Bytes};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The largest answer read (a range over every stream of a large cluster fits easily).
const MAX_BODY: usize = 16 << 20;

/// Why an etcd call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The deadline passed before etcd answered.
    #[error("etcd did not answer within the deadline")]
    Timeout,
    /// No endpoint could be reached.
    #[error("cannot reach etcd at {endpoint}: {why}")]
    Unreachable {
        /// The endpoint last tried.
        endpoint: String,
        /// What failed.
        why: String,
    },
    /// etcd answered with an error status.
    #[error("etcd answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// etcd's own message.
        message: String,
    },
    /// The answer is not what the gateway sends.
    #[error("etcd's answer is not understood: {0}")]
    Malformed(String),
}

/// What a create-if-absent got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Created {
    /// The key is ours now, created at this revision.
    Yes(i64),
    /// Someone holds it already.
    Exists(Kv),
}

/// The etcd endpoints of `[cluster] etcd`, tried in turn from the last one that answered.
#[derive(Debug)]
pub(crate) struct Etcd {
    endpoints: Vec<Uri>,
    current: AtomicUsize,
}

impl Etcd {
    /// A client of `endpoints` (checked by `ClusterConfig::validate`; bad ones are skipped).
    pub(crate) fn new(endpoints: &[String]) -> Self {
        Self {
            endpoints: endpoints
                .iter()
                .filter_map(|e| crate::config::parse_url(e).ok())
                .collect(),
            current: AtomicUsize::new(0),
        }
    }

    /// POSTs `body` to `path` on the current endpoint, then the others, until `deadline`.
    async fn call(&self, path: &str, body: &Value, deadline: Instant) -> Result<Value, EtcdError> {
        let body = Bytes::from(body.to_string());
        let n = self.endpoints.len();
        let mut last = EtcdError::Unreachable {
            endpoint: "-".to_owned(),
            why: "no endpoint configured".to_owned(),
        };
        let first = self.current.load(Ordering::Relaxed);
        for i in 0..n {
            let at = (first + i) % n;
            let endpoint = &self.endpoints[at];
            let attempt = post(endpoint, path, body.clone());
            match tokio::time::timeout_at(deadline.into(), attempt).await {
                Err(_) => return Err(EtcdError::Timeout),
                Ok(Ok(value)) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(value);
                }
                // etcd itself answered: another endpoint would say the same.
                Ok(Err(e @ (EtcdError::Status { .. } | EtcdError::Malformed(_)))) => return Err(e),
                Ok(Err(e)) => last = e,
            }
        }
        Err(last)
    }

    /// A new lease of `ttl` (whole seconds, at least 1).
    pub(crate) async fn grant(&self, ttl: Duration, deadline: Instant) -> Result<i64, EtcdError> {
        let ttl = ttl.as_secs().max(1);
        let v = self
            .call("/v3/lease/grant", &json!({ "TTL": ttl }), deadline)
            .await?;
        match json::int(&v["ID"]) {
            0 => Err(EtcdError::Malformed(format!("lease grant without ID: {v}"))),
            id => Ok(id),
        }
    }

    /// Renews lease `id`; returns its TTL in seconds, 0 when etcd no longer has it.
    pub(crate) async fn keepalive(&self, id: i64, deadline: Instant) -> Result<i64, EtcdError> {
        let body = json!({ "ID": id.to_string() });
        let v = self.call("/v3/lease/keepalive", &body, deadline).await?;
        let result = v.get("result").unwrap_or(&v);
        Ok(json::int(&result["TTL"]))
    }

    /// Revokes lease `id` (its keys go with it); a lease already gone is fine.
    pub(crate) async fn revoke(&self, id: i64, deadline: Instant) -> Result<(), EtcdError> {
        let body = json!({ "ID": id.to_string() });
        match self.call("/v3/lease/revoke", &body, deadline).await {
            Ok(_) => Ok(()),
            Err(EtcdError::Status { message, .. }) if message.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates `key` = `value` under `lease` if it does not exist; else returns who has it.
    pub(crate) async fn create(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
        deadline: Instant,
    ) -> Result<Created, EtcdError> {
        let k = json::b64(key.as_bytes());
        let body = json!({
            "compare": [{ "key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0" }],
            "success": [{ "request_put": { "key": k, "value": json::b64(value), "lease": lease.to_string() } }],
            "failure": [{ "request_range": { "key": k } }],
        });
        let v = self.call("/v3/kv/txn", &body, deadline).await?;
        if v["succeeded"].as_bool() == Some(true) {
            return Ok(Created::Yes(json::int(&v["header"]["revision"])));
        }
        let kvs = &v["responses"][0]["response_range"]["kvs"];
        match json::kvs(kvs)?.into_iter().next() {
            Some(kv) => Ok(Created::Exists(kv)),
            // Deleted between the compare and now cannot happen in one txn; an empty range
            // means the answer is not what we asked for.
            None => Err(EtcdError::Malformed(format!(
                "txn failed without the key: {v}"
            ))),
        }
    }

    /// Sets `key` = `value` under `lease` (0: none); returns the revision.
    pub(crate) async fn put(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
        deadline: Instant,
    ) -> Result<i64, EtcdError> {
        let mut body = json!({ "key": json::b64(key.as_bytes()), "value": json::b64(value) });
        if lease != 0 {
            body["lease"] = Value::String(lease.to_string());
        }
        let v = self.call("/v3/kv/put", &body, deadline).await?;
        Ok(json::int(&v["header"]["revision"]))
    }

    /// Every key under `prefix`, and the revision they were read at.
    pub(crate) async fn range_prefix(
        &self,
        prefix: &str,
        deadline: Instant,
    ) -> Result<(Vec<Kv>, i64), EtcdError> {
        let body = json!({
            "key": json::b64(prefix.as_bytes()),
            "range_end": json::b64(&json::prefix_end(prefix.as_bytes())),
        });
        let v = self.call("/v3/kv/range", &body, deadline).await?;
        Ok((json::kvs(&v["kvs"])?, json::int(&v["header"]["revision"])))
    }

    /// The key `key`, if it exists.
    pub(crate) async fn get(&self, key: &str, deadline: Instant) -> Result<Option<Kv>, EtcdError> {
        let body = json!({ "key": json::b64(key.as_bytes()) });
        let v = self.call("/v3/kv/range", &body, deadline).await?;
        Ok(json::kvs(&v["kvs"])?.into_iter().next())
    }

    /// Deletes `key` if it is still the one created at `create_revision` (never someone
    /// else's claim made since); returns whether it was deleted.
    pub(crate) async fn delete_if(
        &self,
        key: &str,
        create_revision: i64,
        deadline: Instant,
    ) -> Result<bool, EtcdError> {
        let k = json::b64(key.as_bytes());
        let body = json!({
            "compare": [{ "key": k, "target": "CREATE", "result": "EQUAL",
                          "create_revision": create_revision.to_string() }],
            "success": [{ "request_delete_range": { "key": k } }],
        });
        let v = self.call("/v3/kv/txn", &body, deadline).await?;
        Ok(v["succeeded"].as_bool() == Some(true))
    }

    /// Deletes `key` whoever wrote it.
    pub(crate) async fn delete(&self, key: &str, deadline: Instant) -> Result<(), EtcdError> {
        let body = json!({ "key": json::b64(key.as_bytes()) });
        self.call("/v3/kv/deleterange", &body, deadline)
            .await
            .map(|_| ())
    }

    /// Watches every key under `prefix` from `start_revision` on; connecting is bounded by
    /// `deadline`, the events then come as etcd sends them.
    pub(crate) async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
        deadline: Instant,
    ) -> Result<Watch, EtcdError> {
        let endpoint = self
            .endpoints
            .get(self.current.load(Ordering::Relaxed))
            .or_else(|| self.endpoints.first())
            .ok_or_else(|| EtcdError::Unreachable {
                endpoint: "-".to_owned(),
                why: "no endpoint configured".to_owned(),
            })?;
        let open = watch::open(endpoint, prefix, start_revision);
        tokio::time::timeout_at(deadline.into(), open)
            .await
            .map_err(|_| EtcdError::Timeout)?
    }
}

fn unreachable(endpoint: &Uri, why: impl std::fmt::Display) -> EtcdError {
    EtcdError::Unreachable {
        endpoint: endpoint.to_string(),
        why: why.to_string(),
    }
}

/// Connects to `endpoint` and sends the HTTP/1 handshake; the connection's own future is
/// spawned and lives as long as the response body is read.
async fn connect(
    endpoint: &Uri,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, EtcdError> {
    let host = endpoint.host().unwrap_or("localhost");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = endpoint.port_u16().unwrap_or(2379);
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    // Ends when the response is read or the sender dropped (the caller's deadline).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(endpoint: &Uri, path: &str, body: Bytes) -> Result<Request<Full<Bytes>>, EtcdError> {
    let authority = endpoint.authority().map_or("localhost", |a| a.as_str());
    Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "lifeline")
        .body(Full::new(body))
        .map_err(|e| EtcdError::Malformed(e.to_string()))
}

/// One POST on a fresh connection, its JSON answer.
async fn post(endpoint: &Uri, path: &str, body: Bytes) -> Result<Value, EtcdError> {
    let mut sender = connect(endpoint).await?;
    let resp = sender
        .send_request(request(endpoint, path, body)?)
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| unreachable(endpoint, e))?
        .aggregate();
    let value: Value = serde_json::from_reader(bytes.reader())
        .map_err(|e| EtcdError::Malformed(format!("{path}: {e}")))?;
    if status != StatusCode::OK {
        return Err(EtcdError::Status {
            status: status.as_u16(),
            message: value["message"]
                .as_str()
                .or_else(|| value["error"].as_str())
                .unwrap_or("-")
                .to_owned(),
        });
    }
    Ok(value)
}
