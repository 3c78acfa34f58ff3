//! The `gatehouse` command line: `serve`, `keys`, `check-config`, `lint-prompts`,
//! `mock-upstream`, `version`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gatehouse", about = "Self-hosted LLM gateway", version)]
struct Cli {
    /// Configuration file (TOML). Without one, built-in defaults and the environment are used.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per process run")]
enum Command {
    /// Run the gateway (the default command).
    Serve {
        /// Address to listen on; overrides `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate the configuration and print what it resolves to, secrets masked.
    CheckConfig,
    /// Manage API keys in the configured database.
    #[command(subcommand)]
    Keys(gatehouse::access::cli::KeysCommand),
    /// Serve a mock OpenAI upstream that injects faults at random, to rehearse outages.
    MockUpstream(Box<test_support::cli::MockUpstreamArgs>),
    /// Count the tokens of every assistant's system prompt and experiment variant prompt in the
    /// configured database; exit 1 when any is over the limit (2 when it cannot check).
    LintPrompts {
        /// Token limit; default `[assistants] prompt_token_limit` (2,000).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    if let Command::Version = command {
        println!("gatehouse {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Command::MockUpstream(args) = command {
        return mock_upstream(&args);
    }
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::CheckConfig => {
            print!("{}", config.describe());
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            serve(config)
        }
        Command::Keys(cmd) => gatehouse::access::cli::main(&config, cmd),
        Command::LintPrompts { limit } => lint_prompts(&config, limit),
        Command::Version | Command::MockUpstream(_) => ExitCode::SUCCESS,
    }
}

/// Needs no configuration: flags in, mock upstream out, until SIGINT or SIGTERM.
fn mock_upstream(args: &test_support::cli::MockUpstreamArgs) -> ExitCode {
    let faults = match args.profile() {
        Ok(faults) => faults,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(args.run(faults, shutdown_signal())));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn lint_prompts(config: &Config, limit: Option<u64>) -> ExitCode {
    let limit = limit.unwrap_or(config.assistants.prompt_token_limit);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let url = secrecy::ExposeSecret::expose_secret(&config.database_url);
        let store = match store::Store::connect(url).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let report = gatehouse::assistants::lint::lint_store(config, &store, limit).await;
        store.close().await;
        match report {
            Ok(r) => {
                print!("{}", r.render());
                if r.failures() > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

fn serve(config: Config) -> ExitCode {
    let _log_guard = gatehouse::telemetry::logging::init(&config.log);
    // With serving threads the main runtime only accepts connections and runs background
    // work (the ledger writer, key refresh); one worker is plenty.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if gatehouse::serve::resolve_threads(config.server.threads) > 0 {
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let addr = config.server.listen;
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: could not listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match gatehouse::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
