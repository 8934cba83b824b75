//! Serves a directory of manifests as a fake kube-apiserver on loopback, for
//! demos and benchmarks of kubectl-azflux without a cluster.
//!
//! ```text
//! cargo run --release -p fake-apiserver -- --seed DIR --kubeconfig-out FILE
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fake_apiserver::{FakeConfig, KubeUser, kubeconfig_yaml, serve};

#[derive(Parser)]
#[command(about = "A loopback stand-in for kube-apiserver, seeded from manifests")]
struct Args {
    /// Directory of *.yaml, *.yml and *.json manifests to serve.
    #[arg(long)]
    seed: PathBuf,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Service account token issuer.
    #[arg(long)]
    issuer: Option<String>,
    /// Delay before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Bearer token written into the kubeconfig. The server accepts any.
    #[arg(long, default_value = "fake-token")]
    token: String,
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(e) => {
                    eprintln!("cannot listen for SIGTERM: {e}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match FakeConfig::from_seed_dir(&args.seed) {
        Ok(config) => FakeConfig {
            issuer: args.issuer,
            latency: Duration::from_millis(args.latency_ms),
            request_log: args.request_log,
            port: args.port,
            ..config
        },
        Err(e) => {
            eprintln!("error: cannot load the seed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{}: {e}", config.port);
            return ExitCode::FAILURE;
        }
    };
    let url = match listener.local_addr() {
        Ok(address) => format!("http://{address}"),
        Err(e) => {
            eprintln!("error: the listener has no address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kubeconfig = kubeconfig_yaml(&url, &KubeUser::Token(args.token));
    if let Err(e) = std::fs::write(&args.kubeconfig_out, kubeconfig) {
        eprintln!("error: cannot write {}: {e}", args.kubeconfig_out.display());
        return ExitCode::FAILURE;
    }
    println!("serving on {url}");
    // Whoever started us reads this line to learn the port; do not let it sit in a buffer.
    if let Err(e) = std::io::stdout().flush() {
        eprintln!("error: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    match serve(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
