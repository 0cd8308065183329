#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::router;
use crate::config::Config;
use crate::control::ConnControl;
use crate::registry::{PublishOutcome, PublisherGuard};
use crate::shared::Shared;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

fn shared(token: Option<&str>) -> Arc<Shared> {
    let mut config = Config::default();
    config.http.token = token.map(str::to_owned);
    Shared::new(Arc::new(config))
}

fn conn(shared: &Arc<Shared>, id: u64) -> (Arc<ConnControl>, crate::live::LiveGuard) {
    let c = Arc::new(ConnControl::new(
        id,
        format!("127.0.0.1:{}", 40000 + id).parse().unwrap(),
        CancellationToken::new(),
    ));
    let guard = shared.live.insert(c.clone());
    (c, guard)
}

fn publish(shared: &Arc<Shared>, c: &Arc<ConnControl>) -> PublisherGuard {
    match shared.registry.publish("live", "cam", c, Instant::now()) {
        PublishOutcome::Granted(g) => g,
        other => panic!("not granted: {other:?}"),
    }
}

async fn call(
    shared: &Arc<Shared>,
    method: &str,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = router(shared.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn lists_streams_and_connections() {
    let s = shared(None);
    let (publisher, _g1) = conn(&s, 1);
    let (_player_conn, _g2) = conn(&s, 2);
    let _pub_guard = publish(&s, &publisher);
    let (_player, _sub) = s.registry.play("live", "cam");

    let (status, body) = call(&s, "GET", "/api/v1/streams", None).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    let st = &v["streams"][0];
    assert_eq!(st["app"], "live");
    assert_eq!(st["name"], "cam");
    assert_eq!(st["publisher"]["id"], 1);
    assert_eq!(st["players"], 1);

    let (status, body) = call(&s, "GET", "/api/v1/connections", None).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    let list = v["connections"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["role"], "handshaking");
    // No socket behind these connections: no kernel evidence, and no failure either.
    assert!(list[0]["kernel"].is_null());

    let (status, body) = call(&s, "GET", "/api/v1/connections/2", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["peer"], "127.0.0.1:40002");
}

#[tokio::test]
async fn kick_frees_the_name_before_answering() {
    let s = shared(None);
    let (publisher, _g1) = conn(&s, 1);
    let pub_guard = publish(&s, &publisher);
    let (status, body) = call(&s, "DELETE", "/api/v1/connections/1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["freed_stream"], "live/cam");
    assert_eq!(publisher.requested_reason(), Some(CloseReason::Kicked));
    // A newcomer gets the name at once, even though the old task has not ended yet.
    let (newcomer, _g2) = conn(&s, 2);
    let _new_guard = publish(&s, &newcomer);
    drop(pub_guard);

    let (status, body) = call(&s, "DELETE", "/api/v1/streams/live/cam", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(newcomer.requested_reason(), Some(CloseReason::Kicked));
    let (status, body) = call(&s, "DELETE", "/api/v1/streams/live/cam", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("no publisher")
    );
}

#[tokio::test]
async fn errors_are_json() {
    let s = shared(None);
    let (status, body) = call(&s, "DELETE", "/api/v1/connections/42", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json(&body)["error"].as_str().unwrap().contains("42"));
    let (status, body) = call(&s, "DELETE", "/api/v1/connections/abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json(&body)["error"].as_str().unwrap().contains("abc"));
    let (status, body) = call(&s, "GET", "/api/v2/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["status"], 404);
    let (status, body) = call(&s, "POST", "/api/v1/streams", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(json(&body)["error"].is_string());
    let (status, body) = call(&s, "GET", "/api/v1/events?after=x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json(&body)["error"].is_string());
}

#[tokio::test]
async fn token_guards_everything() {
    let s = shared(Some("s3cret"));
    for path in ["/", "/api/v1/streams", "/api/v1/connections", "/metrics"] {
        let (status, body) = call(&s, "GET", path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(json(&body)["error"].as_str().unwrap().contains("token"));
        let (status, _) = call(&s, "GET", path, Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = call(&s, "GET", path, Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, body) = call(&s, "GET", "/?token=s3cret", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<html"));
    let (status, _) = call(&s, "DELETE", "/api/v1/connections/1", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_and_close_events() {
    let s = shared(None);
    let (c, guard) = conn(&s, 7);
    drop(guard);
    s.metrics
        .record_close(&CloseReason::Kicked, Duration::from_millis(30), 100, 200);
    s.live
        .record_close(&c, &CloseReason::Kicked, Duration::from_millis(30));
    let (status, body) = call(&s, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("lifeline_closes_total{reason=\"kicked\"} 1"),
        "{body}"
    );
    assert!(body.contains("lifeline_received_bytes_total 100"), "{body}");
    assert!(
        body.contains("lifeline_silence_before_close_seconds_bucket"),
        "{body}"
    );
    assert!(
        body.contains("lifeline_connections{role=\"player\"} 0"),
        "{body}"
    );
    assert!(body.contains("lifeline_takeovers_total 0"), "{body}");

    let (status, body) = call(&s, "GET", "/api/v1/events?after=0", None).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    assert_eq!(v["closes"][0]["id"], 7);
    assert_eq!(v["closes"][0]["reason"], "kicked");
    let last = v["last_seq"].as_u64().unwrap();
    let (_, body) = call(&s, "GET", &format!("/api/v1/events?after={last}"), None).await;
    assert!(json(&body)["closes"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn dashboard_is_embedded() {
    let s = shared(None);
    let (status, body) = call(&s, "GET", "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("/assets/app.js"));
    for asset in ["/assets/app.js", "/assets/style.css"] {
        let (status, body) = call(&s, "GET", asset, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.is_empty());
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset}: no CDN"
        );
    }
}

#[tokio::test]
async fn lists_relays_with_keys_masked() {
    let config = Config::from_toml(
        "[[relay.push]]\napp = \"live\"\nname = \"cam\"\n\
         url = \"rtmp://127.0.0.1:1/live2/SECRET-KEY\"\n",
    )
    .unwrap();
    let s = Shared::new(Arc::new(config));
    let (status, body) = call(&s, "GET", "/api/v1/relays", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(json(&body)["relays"].as_array().unwrap().is_empty());
    let (publisher, _g) = conn(&s, 1);
    let _pub_guard = publish(&s, &publisher);
    let (_, body) = call(&s, "GET", "/api/v1/relays", None).await;
    let relays = json(&body)["relays"].as_array().unwrap().clone();
    assert_eq!(relays.len(), 1, "{body}");
    let r = &relays[0];
    assert_eq!(r["kind"], "push");
    assert_eq!(r["stream"], "live/cam");
    assert_eq!(
        r["url"], "rtmp://127.0.0.1:1/live2/***",
        "a path key is masked"
    );
    assert!(!body.contains("SECRET"), "{body}");
    for key in [
        "state",
        "reconnects",
        "bytes_out",
        "bitrate_bps",
        "last_close",
    ] {
        assert!(r.get(key).is_some(), "{key} in {r}");
    }
    s.relays.shutdown();
}

#[tokio::test]
async fn cluster_view() {
    let s = shared(None);
    let (status, body) = call(&s, "GET", "/api/v1/cluster", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["enabled"], false);
    // On, but etcd unreachable (nothing listens on port 1): no lease, nothing owned yet.
    let config = Config::from_toml(
        "[cluster]\netcd = [\"http://127.0.0.1:1\"]\nnode = \"n1\"\n\
         advertise = \"rtmp://192.0.2.1:1935\"\n",
    )
    .unwrap();
    let s = Shared::new(Arc::new(config));
    let (status, body) = call(&s, "GET", "/api/v1/cluster", None).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    assert_eq!(v["enabled"], true);
    assert_eq!(v["node"], "n1");
    assert_eq!(v["advertise"], "rtmp://192.0.2.1:1935");
    assert!(v["lease"].is_null(), "{v}");
    assert!(v["nodes"].as_array().unwrap().is_empty());
    assert!(v["streams"].as_array().unwrap().is_empty());
    let (_, metrics) = call(&s, "GET", "/metrics", None).await;
    for m in [
        "lifeline_cluster_lease_renewals_total",
        "lifeline_cluster_leases_lost_total",
    ] {
        assert!(metrics.contains(m), "{m} in\n{metrics}");
    }
}
