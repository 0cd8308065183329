//! The binary's configuration interface: `lifeline config`, `--config`, and refusals that name
//! what is wrong.

use std::process::Command;
use testkit::rtmp::TempDir;

fn lifeline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lifeline"))
}

#[test]
fn config_prints_the_commented_defaults_which_serve_accepts() {
    let out = lifeline().arg("config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for key in [
        "publish_idle_timeout",
        "tcp_user_timeout",
        "on_duplicate",
        "challenge_timeout",
    ] {
        assert!(text.contains(key), "{key} missing from `lifeline config`");
    }
    // Every key carries a comment on the line(s) before it.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" = ") && !line.starts_with('#') {
            assert!(lines[i - 1].starts_with('#'), "no comment above {line:?}");
        }
    }
    let parsed: lifeline_server::Config = lifeline_server::Config::from_toml(&text).unwrap();
    assert_eq!(parsed, lifeline_server::Config::default());
}

#[test]
fn serve_refuses_an_unknown_key_and_a_bad_value_with_their_names() {
    let dir = TempDir::new("lifeline-cli");
    for (toml, needle) in [
        (
            "[liveness]\npublish_idle_timout = \"5s\"\n",
            "publish_idle_timout",
        ),
        ("[liveness]\ntcp_keepalive_count = 500\n", "tcp_keepalive"),
        ("[publish]\non_duplicate = \"steal\"\n", "on_duplicate"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let out = lifeline()
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {toml:?}");
        assert!(
            err.contains(needle),
            "error for {toml:?} does not name {needle}: {err}"
        );
    }
}
