//! Linux TCP liveness: per-socket keepalive and user timeout, `TCP_INFO`, the kernel's
//! keepalive sysctls, and the exact detection-time formulas.
