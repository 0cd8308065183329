//! Server configuration: TOML with embedded defaults.

/// The full default configuration with a comment on every key (`lifeline config`).
pub const DEFAULT_CONFIG_TOML: &str = "";
