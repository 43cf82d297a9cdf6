//! The command table: every command's name, usage, help, options and
//! identity, in one place (main.rs parses and dispatches from it; the tests
//! iterate it).

/// Which command (main.rs dispatches on it, exhaustively).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id {
    Detect,
    Reconcile,
    Register,
    Unregister,
    Start,
    Stop,
    Restart,
    Status,
    Health,
    List,
    Pid,
    Port,
    Run,
    Finish,
    Log,
    InitScandir,
    Svscan,
}

/// One command.
pub struct Command {
    pub id: Id,
    pub name: &'static str,
    /// Arguments and options, as in `usage: hermes-s6 NAME ARGS`.
    pub args: &'static str,
    /// One line for the list of commands.
    pub summary: &'static str,
    /// What `--help` adds below the usage line.
    pub help: &'static str,
    /// The long options it takes; anything else is bad usage.
    pub options: &'static [&'static str],
    /// Started as root, it acts as the hermes user. The writers: a root-owned
    /// slot in the hermes-owned tree would be unusable by its supervisor, and
    /// root has no business writing hermes' files. The readers too: what they
    /// read is the hermes user's, and a link planted there must not let root
    /// read for hermes what hermes may not read. (`run`, `finish` and `log`
    /// drop on their own, after their own checks.)
    pub as_hermes: bool,
}

const LIFECYCLE: &[&str] = &["all", "wait", "timeout"];

pub const COMMANDS: &[Command] = &[
    Command {
        id: Id::Detect,
        name: "detect",
        args: "",
        summary: "print `s6` (exit 0) when PID 1 is s6, else `none` (exit 1)",
        help: "exit 0 and print `s6` when /proc/1/comm is s6-svscan and /run/s6/basedir is a directory; else exit 1 and print `none`.",
        options: &[],
        as_hermes: false,
    },
    Command {
        id: Id::Reconcile,
        name: "reconcile",
        args: "[--dry-run]",
        summary: "container-boot reconciliation of every profile's slot",
        help: "Sweep leftover slots, then publish one slot per real profile (default first), down unless its intent is `running`; log to $HERMES_HOME/logs/container-boot.log. --dry-run changes nothing and prints the same lines.",
        options: &["dry-run"],
        as_hermes: true,
    },
    Command {
        id: Id::Register,
        name: "register",
        args: "P [--start]",
        summary: "create P's gateway slot (down unless --start)",
        help: "Create P's gateway slot, down unless --start, and tell the scanner. Already registered: exit 1.",
        options: &["start"],
        as_hermes: true,
    },
    Command {
        id: Id::Unregister,
        name: "unregister",
        args: "P [--timeout MS]",
        summary: "take P's gateway down and remove its slot",
        help: "Take P's gateway down (waiting for its finish), remove the slot, let the scanner drop its supervisor. Not registered: exit 0.",
        options: &["timeout"],
        as_hermes: true,
    },
    Command {
        id: Id::Start,
        name: "start",
        args: "P|--all [--wait [--timeout MS]]",
        summary: "persist desired_state=running, bring it up",
        help: "Persist desired_state=running, then bring the gateway up; a real profile without a slot is registered first. --wait: until it is ready, here or in another container sharing the volume (said).",
        options: LIFECYCLE,
        as_hermes: true,
    },
    Command {
        id: Id::Stop,
        name: "stop",
        args: "P|--all [--wait [--timeout MS]]",
        summary: "persist desired_state=stopped, bring it down",
        help: "Persist desired_state=stopped, write the planned-stop marker into P's home, then bring the gateway down (in another container: that container's watcher does). If s6 refuses, the previous state is restored and the exit is 1.",
        options: LIFECYCLE,
        as_hermes: true,
    },
    Command {
        id: Id::Restart,
        name: "restart",
        args: "P|--all [--wait [--timeout MS]]",
        summary: "restart with a new pid, even if stopped",
        help: "Persist desired_state=running, write a restart marker, and restart: the gateway comes back with a new pid even if it was stopped.",
        options: LIFECYCLE,
        as_hermes: true,
    },
    Command {
        id: Id::Status,
        name: "status",
        args: "[P] [--json]",
        summary: "s6 and intent state of every (or one) profile",
        help: "One line per registered or real profile (after a `Manager:` line), or one JSON document.",
        options: &["json"],
        as_hermes: true,
    },
    Command {
        id: Id::Health,
        name: "health",
        args: "",
        summary: "exit 0 when every gateway meant to run is ready (here or elsewhere)",
        help: "Exit 0 when every real profile whose intent is `running` is ready here or held by a live gateway in another container (its lease), else 1 with one line per problem. For HEALTHCHECK and liveness/readiness probes: spawns nothing.",
        options: &[],
        as_hermes: true,
    },
    Command {
        id: Id::List,
        name: "list",
        args: "",
        summary: "profiles that have a slot, sorted",
        help: "The profiles that have a slot, one per line, sorted.",
        options: &[],
        as_hermes: true,
    },
    Command {
        id: Id::Pid,
        name: "pid",
        args: "P",
        summary: "pid of P's running gateway (exit 1 when down)",
        help: "Print the pid of P's running gateway; exit 1 when it is not up.",
        options: &[],
        as_hermes: true,
    },
    Command {
        id: Id::Port,
        name: "port",
        args: "P",
        summary: "P's port",
        help: "Print P's port: 9200 + (first 4 bytes of SHA-256(P)) mod 600.",
        options: &[],
        as_hermes: false,
    },
    Command {
        id: Id::Run,
        name: "run",
        args: "P [-- CMD ARGS...]",
        summary: "(slot run script) take the lease, record the run-intent, exec the gateway",
        help: "Used by the slot's run script: take P's lease (standing by while another container's gateway holds it), record the run-intent, pid and start time in P's state, then exec the gateway (CMD, else $HERMES_GATEWAY_CMD). P `-`: the slot of the working directory.",
        options: &[],
        as_hermes: false,
    },
    Command {
        id: Id::Finish,
        name: "finish",
        args: "P CODE SIGNAL",
        summary: "(slot finish script) classify the death, persist it",
        help: "Used by the slot's finish script: classify the gateway's death, persist it, exit 125 when s6 must not restart it. P `-`: the slot of the working directory.",
        options: &[],
        as_hermes: false,
    },
    Command {
        id: Id::Log,
        name: "log",
        args: "P",
        summary: "(slot log/run script) exec s6-log into P's log directory",
        help: "Used by the slot's log/run script: exec s6-log into $HERMES_HOME/logs/gateways/P (P@HOST when another container's logger writes that one). P `-`: the slot whose log/ is the working directory.",
        options: &[],
        as_hermes: false,
    },
    Command {
        id: Id::InitScandir,
        name: "init-scandir",
        args: "",
        summary: "(cont-init.d, root) prepare the scan directory",
        help: "Used by cont-init.d as root: create the nested scan directory empty and owned by $HERMES_S6_USER, the old one moved aside (or, in the root-scandir layout, open it and its scanner to that user).",
        options: &[],
        as_hermes: false,
    },
    Command {
        id: Id::Svscan,
        name: "svscan",
        args: "SCANDIR",
        summary: "(the nested tree's service) exec s6-svscan sized for the profiles",
        help: "Used by the nested tree's service: exec s6-svscan on SCANDIR with room for $HERMES_S6_MAX_PROFILES gateway slots (default 1000), with -C or -c as this s6 wants.",
        options: &[],
        as_hermes: false,
    },
];

pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

impl Command {
    /// `usage: hermes-s6 NAME ARGS` and the help text.
    pub fn help_text(&self) -> String {
        format!("usage: hermes-s6 {}\n\n{}", self.usage(), self.help)
    }

    fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// `hermes-s6 --help`.
pub fn usage() -> String {
    let mut s = String::from("usage: hermes-s6 COMMAND [ARGS]\n\ncommands:\n");
    for c in COMMANDS {
        s.push_str(&format!("  {:<40} {}\n", c.usage(), c.summary));
    }
    s.push_str("\nexit: 0 done, 1 refused/not possible, 100 bad usage, 111 system error\n");
    s.push_str("Run `hermes-s6 COMMAND --help` for one command.");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_listed_once_with_its_help() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS[i + 1..]
                    .iter()
                    .all(|d| d.name != c.name && d.id != c.id),
                "{} twice",
                c.name
            );
            assert!(usage().contains(&format!("  {} ", c.name)), "{}", c.name);
            assert!(c
                .help_text()
                .starts_with(&format!("usage: hermes-s6 {}", c.name)));
        }
    }
}
