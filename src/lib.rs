//! hermes-s6: the logic behind the `hermes-s6` command (see SPEC.md / docs/).
//! Modules by concern; `main.rs` only parses the command line and dispatches.

pub mod error;

// pure building blocks
pub mod clock; // now, ISO-8601 UTC formatting/parsing
pub mod fsutil; // write-new-then-rename, locks, no-follow opens
pub mod json; // JSON value type that keeps unknown keys (nanoserde drops them)
pub mod procfs; // /proc/PID/stat start time
pub mod profile; // the Profile name type, homes, ports, the environment
pub mod sha256; // FIPS 180-4, for the port
pub mod sys; // the system calls std lacks, all the FFI in one place

// files in a profile home
pub mod bootlog; // logs/container-boot.log
pub mod lease; // gateway.lease: one gateway per profile across containers
pub mod marker; // .gateway-planned-stop.json
pub mod state; // gateway_state.json

// s6
pub mod control; // s6-svc / s6-svscanctl as control-FIFO writes
pub mod detect; // is PID 1 s6?
pub mod role; // the container's main command: dashboard, legacy `gateway run`
pub mod scanner; // the nested s6-svscan, sized for the profiles
pub mod slot; // gateway-P service directories
pub mod svstat; // supervise/status decoder, s6-svstat -o

// commands
pub mod command; // the command table: names, usage, options, who runs them
pub mod front; // `hermes`: the front of upstream's CLI
pub mod lifecycle; // run / finish (the death table) / log
pub mod ops; // register / unregister / start / stop / restart
pub mod ready; // readiness: the watcher behind notification-fd, data/ready
pub mod reconcile; // boot reconciliation
pub mod status; // status / health / list / pid
