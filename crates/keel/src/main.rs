//! `keel`: the Keel mail server (`keel serve`) and its administration CLI.

mod certcli;
mod cli;
mod config;
mod http;
mod manager;
mod migrate;
mod server;
mod setup;
mod status;
mod sys;
mod tls;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::DataDir;

/// Keel: an all-in-one mail and groupware server.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, long_about = None)]
struct Cli {
    /// Data directory (created by the first `keel serve`).
    #[arg(long, global = true, env = "KEEL_DATA", default_value = "./keel-data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default). The first run creates the data directory, a
    /// self-signed certificate, the primary domain and an admin account.
    Serve(ServeArgs),
    /// Show whether the server runs, and its services with their addresses.
    Status,
    /// Copy this embedded installation (SQLite + message files) into PostgreSQL.
    Migrate(migrate::MigrateArgs),
    #[command(flatten)]
    Admin(cli::AdminCommand),
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// The server's Internet hostname (SMTP banner, EHLO, Received, Message-ID);
    /// defaults to the system's host name.
    #[arg(long)]
    hostname: Option<String>,
    /// The primary mail domain created on first run; defaults to the hostname minus its
    /// first label (mail.example.com gives example.com).
    #[arg(long)]
    domain: Option<String>,
    /// Add N to every port (25 becomes 25+N, …), to run beside another instance.
    #[arg(long, value_name = "N")]
    port_offset: Option<u16>,
    /// Listen on this address instead of all addresses (repeatable).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<IpAddr>,
    /// DNS server (ip:port) for MX lookups instead of the system's resolver.
    #[arg(long, value_name = "IP:PORT")]
    dns_server: Option<std::net::SocketAddr>,
    /// First run only: keep the metadata in this PostgreSQL database
    /// (`postgres://user@host/db`) instead of SQLite, so several nodes can share it.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data = DataDir::new(cli.data);
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => run_server(data, args),
        Command::Status => cli::status(&data),
        Command::Migrate(args) => migrate::run(&data, &args),
        Command::Admin(cmd) => cli::run(&data, cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keel: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(data: DataDir, args: ServeArgs) -> anyhow::Result<ExitCode> {
    sys::tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let opts = server::ServeOptions {
        hostname: args.hostname,
        domain: args.domain,
        port_offset: args.port_offset,
        listen: args.listen,
        dns_server: args.dns_server,
        store_url: args.store,
    };
    runtime.block_on(server::serve(data, opts))?;
    Ok(ExitCode::SUCCESS)
}
