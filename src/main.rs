use std::process::ExitCode;

fn main() -> ExitCode {
    kubectl_azflux::cli::run(std::env::args_os().collect())
}
