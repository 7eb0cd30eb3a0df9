//! `fake-imds`: the testkit's strict IMDSv2 server as a program, for demo
//! and shell-driven tests.
//!
//! It serves the preset instance on `127.0.0.1:PORT`, prints one line
//! `IMDS_ENDPOINT=http://127.0.0.1:PORT`, and serves until SIGINT or
//! SIGTERM. Beside the metadata it answers a control API that needs no
//! token:
//!
//! - `PUT /_control/meta-data/<path>` with the new value as the body
//! - `DELETE /_control/meta-data/<path>` (the path and everything below it)
//! - `PUT /_control/tags-enabled` with `true` or `false` as the body

use std::io::Write;
use std::process::ExitCode;

use route53_agent_testkit::{ControlApi, ImdsServer, InstanceDefaults};

/// `EX_USAGE` from sysexits.h, for a bad command line.
const EXIT_USAGE: u8 = 64;

const USAGE: &str = "usage: fake-imds [--port PORT]

Serves a strict IMDSv2 stand-in with a preset instance on 127.0.0.1:PORT
(default 0: the OS chooses) and prints IMDS_ENDPOINT=<url>.";

#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("--port needs a value")]
    MissingPort,
    #[error("--port {value:?} is not a port number")]
    BadPort { value: String },
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
}

enum Command {
    Serve { port: u16 },
    Help,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, ArgsError> {
    let mut port = 0;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--port" => args.next().ok_or(ArgsError::MissingPort)?,
            other => match other.strip_prefix("--port=") {
                Some(value) => value.to_string(),
                None => return Err(ArgsError::Unexpected(arg)),
            },
        };
        port = value.parse().map_err(|_| ArgsError::BadPort {
            value: value.clone(),
        })?;
    }
    Ok(Command::Serve { port })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let port = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve { port }) => port,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("fake-imds: {error}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let server = match ImdsServer::bind(port, ControlApi::On).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("fake-imds: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    server.set_instance(&InstanceDefaults::default());

    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "IMDS_ENDPOINT={}", server.endpoint())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Whoever started us is not listening; serving would be pointless.
        return ExitCode::FAILURE;
    }
    drop(stdout);

    match wait_for_stop_signal().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fake-imds: cannot wait for signals: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, ArgsError> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn port_defaults_to_zero_and_accepts_both_spellings() {
        assert!(matches!(parse(&[]), Ok(Command::Serve { port: 0 })));
        assert!(matches!(
            parse(&["--port", "8080"]),
            Ok(Command::Serve { port: 8080 })
        ));
        assert!(matches!(
            parse(&["--port=9"]),
            Ok(Command::Serve { port: 9 })
        ));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(matches!(parse(&["--port"]), Err(ArgsError::MissingPort)));
        assert!(matches!(
            parse(&["--port", "x"]),
            Err(ArgsError::BadPort { .. })
        ));
        assert!(matches!(
            parse(&["--port", "70000"]),
            Err(ArgsError::BadPort { .. })
        ));
        assert!(matches!(parse(&["serve"]), Err(ArgsError::Unexpected(_))));
    }
}
