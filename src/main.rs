//! route53-agent: see the library for how it works.

fn main() -> std::process::ExitCode {
    route53_agent::cli::main()
}
