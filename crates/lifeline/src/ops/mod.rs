//! Ops toolkit subcommands: `keepalive …` and `sockets …`.
