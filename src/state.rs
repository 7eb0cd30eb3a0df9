//! What the agent remembers on this machine between runs: only which
//! instance it last ran on, in the platform's state directory.
//!
//! That one fact decides whether the start-up garbage collection must list
//! the zones. A brand-new instance (launched from an image, or a new task)
//! has no state of its own and never pays for the listing; an instance that
//! ran the agent before (a reboot, a stop and start, a crash) finds its own
//! id here and collects what an earlier run may have left.
//!
//! The directory is `STATE_DIRECTORY`, which systemd sets for a unit with
//! `StateDirectory=`. Without it (a container, a manual run) nothing is
//! remembered, and only records found live with this instance's marker tell
//! of an earlier run.

use std::path::PathBuf;

/// The file, inside the state directory, that names the last instance.
const INSTANCE_FILE: &str = "instance-id";

/// The state directory, if the platform gave one.
#[derive(Clone, Debug, Default)]
pub struct State {
    dir: Option<PathBuf>,
}

impl State {
    /// From `STATE_DIRECTORY` (systemd may list several, separated by `:`;
    /// the first is ours).
    pub fn from_env() -> Self {
        let dir = std::env::var_os("STATE_DIRECTORY")
            .and_then(|value| {
                value
                    .to_str()
                    .and_then(|text| text.split(':').next())
                    .map(PathBuf::from)
            })
            .filter(|dir| !dir.as_os_str().is_empty());
        State { dir }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        State {
            dir: Some(dir.into()),
        }
    }

    /// True when the agent ran on `instance_id` here before.
    pub fn ran_before(&self, instance_id: &str) -> bool {
        self.dir
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.join(INSTANCE_FILE)).ok())
            .is_some_and(|text| text.trim() == instance_id)
    }

    /// Notes that the agent runs on `instance_id`. A directory that cannot
    /// be written costs only the memory, so the failure is logged and the
    /// agent goes on.
    pub fn remember(&self, instance_id: &str) {
        let Some(dir) = &self.dir else {
            return;
        };
        if let Err(error) = std::fs::write(dir.join(INSTANCE_FILE), format!("{instance_id}\n")) {
            tracing::warn!(dir = %dir.display(), error = %error, "cannot write the state directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_only_the_last_instance() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path());
        assert!(!state.ran_before("i-1"));
        state.remember("i-1");
        assert!(state.ran_before("i-1"));
        assert!(!state.ran_before("i-2"));
        state.remember("i-2");
        assert!(!state.ran_before("i-1"));
    }

    #[test]
    fn without_a_directory_nothing_is_remembered() {
        let state = State::default();
        state.remember("i-1");
        assert!(!state.ran_before("i-1"));
    }
}
