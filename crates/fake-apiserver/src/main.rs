//! Serves a directory of manifests as a fake kube-apiserver on loopback, for
//! demos and benchmarks of kubectl-azflux without a cluster.
//!
//! ```text
//! cargo run --release -p fake-apiserver -- --seed DIR --kubeconfig-out FILE
//! cargo run --release -p fake-apiserver -- --demo
//! ```
//!
//! `--demo` serves the bundled broken example on a fake AKS cluster and prints the
//! `export KUBECONFIG=...` line that points kubectl and kubectl-azflux at it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fake_apiserver::{FakeConfig, KubeUser, demo, kubeconfig_yaml, serve};

#[derive(Parser)]
#[command(about = "A loopback stand-in for kube-apiserver, seeded from manifests")]
struct Args {
    /// Directory of *.yaml, *.yml and *.json manifests to serve.
    #[arg(long, required_unless_present = "demo", conflicts_with = "demo")]
    seed: Option<PathBuf>,
    /// Serve the bundled broken example (examples/broken-aks) on a fake AKS cluster instead.
    #[arg(long)]
    demo: bool,
    /// Where to write a kubeconfig pointing at the server [default with --demo: a file in
    /// the temporary directory].
    #[arg(long, required_unless_present = "demo")]
    kubeconfig_out: Option<PathBuf>,
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

/// The lines a person follows in a second shell; the `export` line comes first so that a
/// script can take it as it is.
fn print_demo_help(kubeconfig: &Path) {
    println!("export KUBECONFIG={}", kubeconfig.display());
    println!(
        "The bundled broken example (examples/broken-aks) runs on a fake AKS cluster. \
         In another shell, run the export line above, then:"
    );
    println!("  cargo run --release -- doctor");
    println!(
        "  cargo run --release -- enable --client-id 3f2504e0-4f89-41d3-9a0c-0305e82c3301 \
         --tenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47 --overwrite --force-conflicts --apply"
    );
    println!("Ctrl-C stops the server; nothing it stores outlives it.");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match &args.seed {
        Some(dir) => FakeConfig::from_seed_dir(dir),
        None => demo::config(),
    };
    let config = match loaded {
        Ok(config) => FakeConfig {
            issuer: args.issuer.or(config.issuer.clone()),
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
    let kubeconfig_out = args
        .kubeconfig_out
        .unwrap_or_else(|| std::env::temp_dir().join("azflux-demo.kubeconfig"));
    let kubeconfig = kubeconfig_yaml(&url, &KubeUser::Token(args.token));
    if let Err(e) = std::fs::write(&kubeconfig_out, kubeconfig) {
        eprintln!("error: cannot write {}: {e}", kubeconfig_out.display());
        return ExitCode::FAILURE;
    }
    println!("serving on {url}");
    if args.demo {
        print_demo_help(&kubeconfig_out);
    }
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
