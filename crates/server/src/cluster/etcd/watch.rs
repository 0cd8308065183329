//! A watch over the gateway: one long POST whose answer is a stream of JSON objects, one per
//! line, each a `WatchResponse` under `result`.

use super::json::{self, Kv};
use super::{EtcdError, connect, request, unreachable};
use bytes::{Bytes, BytesMut};
use http::{StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

/// A line longer than this is not a watch response we can use.
const MAX_LINE: usize = 16 << 20;

/// One change under the watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WatchEvent {
    /// Created or changed.
    Put(Kv),
    /// Deleted (or expired with its lease): the key.
    Delete(String),
}

/// An open watch; dropping it closes its connection.
#[derive(Debug)]
pub(crate) struct Watch {
    body: Incoming,
    buf: BytesMut,
    endpoint: String,
}

pub(super) async fn open(endpoint: &Uri, prefix: &str, start: i64) -> Result<Watch, EtcdError> {
    let mut sender = connect(endpoint).await?;
    let body = json!({ "create_request": {
        "key": json::b64(prefix.as_bytes()),
        "range_end": json::b64(&json::prefix_end(prefix.as_bytes())),
        "start_revision": start.to_string(),
    }});
    let resp = sender
        .send_request(request(
            endpoint,
            "/v3/watch",
            Bytes::from(body.to_string()),
        )?)
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    if resp.status() != StatusCode::OK {
        return Err(EtcdError::Status {
            status: resp.status().as_u16(),
            message: "watch refused".to_owned(),
        });
    }
    Ok(Watch {
        body: resp.into_body(),
        buf: BytesMut::new(),
        endpoint: endpoint.to_string(),
    })
}

impl Watch {
    /// The next batch of events and the revision they bring the watcher to; an error when the
    /// stream ended or etcd cancelled the watch (compacted history: read afresh).
    pub(crate) async fn next(&mut self) -> Result<(Vec<WatchEvent>, i64), EtcdError> {
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(at + 1);
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_slice(text)
                    .map_err(|e| EtcdError::Malformed(format!("watch: {e}")))?;
                if let Some(batch) = parse(&v)? {
                    return Ok(batch);
                }
                continue;
            }
            if self.buf.len() > MAX_LINE {
                return Err(EtcdError::Malformed("watch line too long".to_owned()));
            }
            let frame = self
                .body
                .frame()
                .await
                .ok_or_else(|| EtcdError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    why: "watch stream ended".to_owned(),
                })?;
            let frame = frame.map_err(|e| EtcdError::Unreachable {
                endpoint: self.endpoint.clone(),
                why: e.to_string(),
            })?;
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

/// A watch response: `None` for one without events (created, progress).
fn parse(v: &Value) -> Result<Option<(Vec<WatchEvent>, i64)>, EtcdError> {
    if let Some(e) = v.get("error") {
        return Err(EtcdError::Status {
            status: u16::try_from(json::int(&e["http_code"])).unwrap_or(0),
            message: e["message"].as_str().unwrap_or("watch error").to_owned(),
        });
    }
    let r = v.get("result").unwrap_or(v);
    if json::int(&r["compact_revision"]) != 0 || r["canceled"].as_bool() == Some(true) {
        return Err(EtcdError::Malformed(format!("watch cancelled: {r}")));
    }
    let revision = json::int(&r["header"]["revision"]);
    let Some(events) = r["events"].as_array() else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let kv = json::kv(&e["kv"])?;
        out.push(if e["type"].as_str() == Some("DELETE") {
            WatchEvent::Delete(kv.key)
        } else {
            WatchEvent::Put(kv)
        });
    }
    Ok(Some((out, revision)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_responses() {
        let created = json!({"result":{"header":{"revision":"2"},"created":true}});
        assert_eq!(parse(&created).unwrap(), None);
        let put = json!({"result":{"header":{"revision":"3"},"events":[
            {"kv":{"key":"L2wveA==","create_revision":"3","mod_revision":"3","value":"dg=="}}]}});
        let (events, rev) = parse(&put).unwrap().unwrap();
        assert_eq!(rev, 3);
        assert!(matches!(&events[0], WatchEvent::Put(kv) if kv.key == "/l/x" && kv.value == b"v"));
        let del = json!({"result":{"header":{"revision":"4"},"events":[
            {"type":"DELETE","kv":{"key":"L2wveA==","mod_revision":"4"}}]}});
        assert_eq!(
            parse(&del).unwrap().unwrap().0,
            vec![WatchEvent::Delete("/l/x".to_owned())]
        );
        let compacted =
            json!({"result":{"header":{"revision":"9"},"compact_revision":"5","canceled":true}});
        assert!(parse(&compacted).is_err());
        assert!(parse(&json!({"error":{"http_code":503,"message":"no leader"}})).is_err());
    }
}
