//! `fake-apiserver`: the fake Kubernetes API server as a process, for the lab and demos.
//!
//! Loads objects from YAML/JSON files, writes a kubeconfig for the agent, prints its URL and serves
//! until SIGINT/SIGTERM. Drive it with the `/_fake/` control endpoints (see the library docs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fake_apiserver::FakeApiServer;

/// A fake Kubernetes API server (list/watch of Services, EndpointSlices, Nodes, ServiceCIDRs; Events).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// YAML or JSON files to load at start (objects, Lists, multi-document).
    #[arg(long = "load", value_name = "FILE")]
    load: Vec<PathBuf>,
    /// Write a kubeconfig pointing at this server here.
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: Option<PathBuf>,
    /// Send a BOOKMARK to every watch this often (milliseconds; 0: never).
    #[arg(long, default_value_t = 1000)]
    bookmark_ms: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let bookmarks = (args.bookmark_ms > 0).then(|| Duration::from_millis(args.bookmark_ms));
    let fake = FakeApiServer::start_at(args.listen, bookmarks).await?;
    for path in &args.load {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let n = fake
            .apply_bytes(&text)
            .with_context(|| format!("loading {}", path.display()))?;
        eprintln!("loaded {n} objects from {}", path.display());
    }
    if let Some(p) = &args.kubeconfig_out {
        std::fs::write(p, fake.kubeconfig_yaml())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{}", fake.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
