//! systemd readiness for `Type=notify` units: READY=1 once the first
//! registration is accepted, STOPPING=1 when deregistration begins, and
//! STATUS= lines along the way.
//!
//! Every function is a no-op when the process was not started by systemd
//! (no `NOTIFY_SOCKET` in the environment), and a notification that cannot
//! be sent is only logged at debug: readiness reporting must never stop the
//! agent.

use sd_notify::NotifyState;

/// Tells systemd the service is up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// Tells systemd the service is stopping.
pub fn stopping(status: &str) {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status(&one_line(status)),
    ]);
}

/// Updates the line `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(&one_line(status))]);
}

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!(error = %error, "could not notify systemd");
    }
}

/// The protocol is one `KEY=value` per line: a newline inside a status
/// would start a new assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_stay_on_one_line() {
        assert_eq!(one_line("a\nREADY=1\r\nb"), "a READY=1  b");
    }
}
