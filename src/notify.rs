//! systemd readiness for `Type=notify` units: READY=1 once the first
//! registration is accepted, STOPPING=1 when deregistration begins,
//! STATUS= lines along the way, and EXTEND_TIMEOUT_USEC= while the start
//! waits on a Route 53 that answers but is busy.
//!
//! Every function is a no-op when the process was not started by systemd
//! (no `NOTIFY_SOCKET` in the environment), and a notification that cannot
//! be sent is only logged at debug: readiness reporting must never stop the
//! agent.

use std::time::Duration;

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

/// Asks systemd to wait `by` longer for READY=1 than it would otherwise
/// (EXTEND_TIMEOUT_USEC): the start goes on past `TimeoutStartSec` only for
/// as long as such messages keep coming. The protocol carries microseconds
/// in 32 bits, so `by` is capped at about 71 minutes.
pub fn extend_start(by: Duration) {
    let micros = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::ExtendTimeoutUsec(micros)]);
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
