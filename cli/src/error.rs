//! The one error type of the command-line tool.

use sqsbalancer_sim::Class;
use std::path::PathBuf;

/// Everything the `sqsbalancer` command can refuse. Each prints as one line naming the file and,
/// where there is one, the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of an input file is wrong.
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
    /// A simulation parameter is wrong or its output cannot be written.
    #[error(transparent)]
    Sim(#[from] sqsbalancer_sim::SimError),
    /// Writing an output file failed.
    #[error("{}: cannot write: {reason}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An option's value is malformed in a way its parser could not see (a log filter).
    #[error("{option}: {reason}")]
    BadOption {
        /// The flag.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The worker could not set up its runtime, signal handlers, metrics or listener.
    #[error("cannot set up {what}: {reason}")]
    Setup {
        /// What: the metrics recorder, `--listen`'s port.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The worker could not start or stop cleanly.
    #[error(transparent)]
    Runtime(#[from] sqsbalancer_runtime::RuntimeError),
    /// Simulations broke invariants (each was printed with the command that replays it).
    #[error("{count} simulation run(s) broke an invariant, the most serious a {class} one")]
    Violations {
        /// How many runs.
        count: usize,
        /// The most serious class among them: it picks the exit status.
        class: Class,
    },
    /// `status` saw queues without a live owner for longer than the failover bound.
    #[error("{} queue(s) unowned past the failover bound of {bound:?}: {}", queues.len(), queues.join(" "))]
    Unowned {
        /// HeartbeatTimeout + 2 × HeartbeatInterval.
        bound: std::time::Duration,
        /// The queue names.
        queues: Vec<String>,
    },
}

impl CliError {
    /// The exit status it ends the command with (the table in `main.rs`): 2 for a
    /// configuration the balancer refused, as for a malformed command line; one per class of
    /// broken invariant (so CI tells a protocol bug from a stuck fleet from a crash); 6 for
    /// queues stuck unowned (so a script tells a sick fleet from a failed check); 7 and 8 for a
    /// worker's stop that did not hand everything off; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        use sqsbalancer_runtime::RuntimeError as R;
        match self {
            CliError::Violations { class, .. } => violation_code(*class),
            CliError::Unowned { .. } => 6,
            CliError::Runtime(R::Config(_) | R::QueueSettings { .. } | R::Option { .. }) => 2,
            CliError::BadOption { .. } => 2,
            CliError::Runtime(R::ShutdownTimeout { .. }) => 7,
            CliError::Runtime(R::LifeLost) => 8,
            _ => 1,
        }
    }
}

/// The exit status of simulations whose most serious broken invariant is of `class`.
pub fn violation_code(class: Class) -> u8 {
    match class {
        Class::Safety => 3,
        Class::Liveness => 4,
        Class::Crash => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_of_violation_has_its_own_exit_status() {
        let code = |class| CliError::Violations { count: 1, class }.exit_code();
        assert_eq!(
            [
                code(Class::Safety),
                code(Class::Liveness),
                code(Class::Crash)
            ],
            [3, 4, 5]
        );
        let unowned = CliError::Unowned {
            bound: std::time::Duration::ZERO,
            queues: Vec::new(),
        };
        assert_eq!(unowned.exit_code(), 6);
        let late = CliError::Runtime(sqsbalancer_runtime::RuntimeError::ShutdownTimeout {
            timeout: std::time::Duration::ZERO,
        });
        assert_eq!(late.exit_code(), 7);
    }
}
