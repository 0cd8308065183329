use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while arming, reading or judging TCP liveness.
///
/// Variants carry the kernel's errno (as `io::Error`) so that callers can tell "not permitted"
/// (needs root or a capability) from "not supported by this kernel".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LivenessError {
    /// A value the kernel would reject (or, for sysctls, silently accept although it is nonsense).
    #[error("{what} = {value} is out of range ({min}..={max} {unit})")]
    OutOfRange {
        /// Name of the option, e.g. `TCP_KEEPIDLE`.
        what: &'static str,
        /// The refused value, in `unit`.
        value: u128,
        /// Smallest accepted value.
        min: u128,
        /// Largest accepted value.
        max: u128,
        /// Unit of the three numbers.
        unit: &'static str,
    },
    /// Keepalive timings are whole seconds in the kernel; fractions would be silently dropped.
    #[error("{what} must be a whole number of seconds, got {value:?}")]
    NotWholeSeconds {
        /// Name of the option.
        what: &'static str,
        /// The refused duration.
        value: std::time::Duration,
    },
    /// `setsockopt` failed.
    #[error("setsockopt({option}) failed: {source}")]
    SetOption {
        /// Option name.
        option: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// `getsockopt` failed (e.g. not a TCP socket).
    #[error("getsockopt({option}) failed: {source}")]
    GetOption {
        /// Option name.
        option: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a file under /proc or /etc failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A /proc file did not contain what the kernel documents.
    #[error("{}: unexpected content {content:?}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was read.
        content: String,
    },
    /// The kernel refused an operation for lack of privileges.
    #[error("{action}: permission denied ({needs})")]
    PermissionDenied {
        /// What was attempted.
        action: String,
        /// What the kernel demands, in words an operator can act on.
        needs: String,
    },
    /// The running kernel lacks a feature (config option or syscall).
    #[error("{action}: not supported by this kernel ({needs})")]
    Unsupported {
        /// What was attempted.
        action: String,
        /// What is missing.
        needs: String,
    },
    /// A netlink (sock_diag) exchange failed.
    #[error("netlink sock_diag: {0}")]
    Netlink(String),
    /// An operation on another process failed.
    #[error("{action}: {source}")]
    Process {
        /// What was attempted.
        action: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}
