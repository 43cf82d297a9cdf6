//! hermes-s6: the logic behind the `hermes-s6` command (see SPEC.md / docs/).
//! Modules by concern; `main.rs` only parses the command line and dispatches.

pub mod error;

// pure building blocks
pub mod clock;
pub mod fsutil; // write-new-then-rename, locks, no-follow opens
pub mod json; // JSON value type that keeps unknown keys (nanoserde drops them)
pub mod procfs; // /proc/PID/stat start time
pub mod profile; // names, homes, ports, the environment
pub mod sha256; // FIPS 180-4, for the port // now, ISO-8601 UTC formatting/parsing

// files in a profile home
pub mod bootlog;
pub mod marker; // .gateway-planned-stop.json
pub mod state; // gateway_state.json // logs/container-boot.log

// s6
pub mod control;
pub mod detect; // is PID 1 s6?
pub mod slot; // gateway-P service directories
pub mod svstat; // s6-svstat -o / human lines / supervise/status decoder // s6-svc / s6-svscanctl wrappers

// commands
pub mod lifecycle; // run / finish decision table
pub mod ops; // register / unregister / start / stop / restart
pub mod ready; // readiness: the watcher behind notification-fd, data/ready
pub mod reconcile;
pub mod status; // status / list / pid // boot reconciliation
