//! The command line: `civic serve`, and the plug-in author's tools. Each command calls
//! the same library functions the server uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::api::{ApiConfig, app};
use crate::service::{Service, ServiceConfig};
use crate::sweeper::Sweeper;

/// civic-rules: a WebAssembly plug-in rules platform for city service hotlines.
#[derive(Parser, Debug)]
#[command(name = "civic", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

pub use crate::author::PluginCommand;

#[derive(Subcommand, Debug)]
enum Command {
    /// Re-run a case's recorded decisions on a server and report whether each is identical.
    Replay {
        /// The case id.
        case: String,
        /// The server, `http://host:port`.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// A token that may read the case.
        #[arg(long, env = "CIVIC_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Backtest a candidate version against the active one on a district's past cases.
    Backtest {
        /// The district.
        #[arg(long)]
        district: String,
        /// The hook.
        #[arg(long)]
        hook: crate::runtime::Hook,
        /// The candidate version (its sha256, or at least its first 8 hex digits).
        #[arg(long)]
        version: String,
        /// Cases created from: a date (`2026-11-01`, the start of that day in the city's
        /// time), a datetime (`2026-11-01T08:00:00+08:00`) or ms since the epoch (default:
        /// 30 days ago).
        #[arg(long, value_parser = crate::calendar::parse_instant_arg)]
        from: Option<i64>,
        /// Cases created before: a date (the start of that day), a datetime or ms (default:
        /// now).
        #[arg(long, value_parser = crate::calendar::parse_instant_arg)]
        to: Option<i64>,
        /// Slices the range is split into (one request each; the progress bar counts them).
        #[arg(long, default_value_t = 20)]
        slices: u32,
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// A token that may read the district's plug-ins.
        #[arg(long, env = "CIVIC_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Tools for plug-in authors: scaffold, build, run, test, deploy.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Operator commands on a store this machine holds (the server must be stopped).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Move a whole store between engines, or check one (`civic store export | civic store
    /// import`).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run the server (an empty store gets the sample city and the bundled plug-ins).
    Serve {
        /// Data directory (compiled-plug-in cache, admin token, and the sled store unless
        /// --store says otherwise).
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "CIVIC_LISTEN")]
        listen: SocketAddr,
        /// sled's page cache in MiB; size it to hold the open cases (see BENCHMARKS.md, "A
        /// year of cases": 256 kept every desk view fast at a million cases).
        #[arg(long, default_value_t = crate::store::sled::DEFAULT_CACHE_BYTES >> 20, env = "CIVIC_CACHE_MB", value_parser = clap::value_parser!(u64).range(16..=1 << 20))]
        cache_mb: u64,
        /// How often the background sweeper fires due timers, in milliseconds.
        #[arg(long, default_value_t = 1000, env = "CIVIC_SWEEP_MS", value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
        sweep_ms: u64,
        /// Working-time calendar file (weekends, holidays, make-up days per year) in place
        /// of the bundled one; same format as `data/calendar.json`.
        #[arg(long, env = "CIVIC_CALENDAR")]
        calendar: Option<PathBuf>,
        /// Retention: keep finished cases this many years after their last change; at start
        /// and then daily, older ones are archived to --archive-dir and removed from the
        /// store (see README, "Retention"). Without it nothing is ever removed.
        #[arg(long, env = "CIVIC_KEEP_YEARS", value_parser = clap::value_parser!(u32).range(1..=100))]
        keep_years: Option<u32>,
        /// Where the retention policy writes its archives (default: DATA/archives).
        #[arg(long, env = "CIVIC_ARCHIVE_DIR", requires = "keep_years")]
        archive_dir: Option<PathBuf>,
        /// This host's name among several serving one store (shown by /healthz, in logs
        /// and as the `node` label of every metric); generated when not given.
        #[arg(long, env = "CIVIC_NODE")]
        node: Option<String>,
    },
}

/// Which store: `--store sled:DIR` or `--store postgres://…`; without it, the sled store
/// in the data directory.
#[derive(clap::Args, Debug, Clone)]
struct StoreArg {
    /// The case store: `sled:DIR` (embedded, the default: sled:DATA/store) or
    /// `postgres://user:password@host:port/database` (PostgreSQL, CockroachDB, YugabyteDB).
    ///
    /// Read as text and checked here, not by the argument parser, whose error message would
    /// repeat the value — and with it a database password.
    #[arg(long = "store", env = "CIVIC_STORE", hide_env_values = true)]
    store: Option<String>,
}

impl StoreArg {
    /// The store named, or the sled store under `data`; a value that names no store is an
    /// error that never shows its password.
    fn config(&self, data: &std::path::Path) -> anyhow::Result<crate::store::StoreConfig> {
        match &self.store {
            Some(s) => Ok(crate::store::StoreConfig::parse(s)?),
            None => Ok(crate::store::StoreConfig::Sled(
                crate::store::sled::SledConfig::new(data.join("store")),
            )),
        }
    }
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Write the whole store as JSON Lines (to standard output, or --out), with a progress
    /// bar on standard error. Stop writers first for an export of one moment.
    Export {
        /// Data directory whose sled store to export (when --store is not given).
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read an export (from standard input, or --file) into a store that holds no cases,
    /// then check it.
    Import {
        /// Data directory whose sled store to import into (when --store is not given).
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Read this file instead of standard input.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Move finished cases past the retention period to an archive file and remove them
    /// from the store (see README, "Retention"). Open cases are never touched. The archive
    /// is what `civic store export` writes, with an archive header: `civic store import`
    /// reads it into an empty store, or back into this one. Prints the run's audit record.
    Archive {
        /// Data directory whose sled store to archive from (when --store is not given). The
        /// server must be stopped: sled is one process's; on PostgreSQL run it any time.
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Keep finished cases this many years after their last change.
        #[arg(
            long,
            required_unless_present = "closed_before",
            conflicts_with = "closed_before"
        )]
        keep_years: Option<u32>,
        /// Archive finished cases last changed before this date (YYYY-MM-DD, midnight UTC)
        /// or time (RFC 3339).
        #[arg(long)]
        closed_before: Option<String>,
        /// The archive file to write; an existing file is refused, never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rewrite a sled store into a fresh one and swap them: sled never gives disk space
    /// back, so a store whose cases were each written many times takes several times what
    /// it holds (see BENCHMARKS.md). Stop the server first; needs free disk for the copy.
    Compact {
        /// Data directory whose sled store to compact (when --store is not given).
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// List every retention run's audit record as JSON.
    Archives {
        /// Data directory whose sled store to read (when --store is not given).
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Check that every case has its events and its indexes; prints the report as JSON.
    Check {
        /// Data directory whose sled store to check (when --store is not given).
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// A progress bar on standard error, hidden when it is not a terminal.
fn progress_bar(total: Option<u64>, what: &'static str) -> indicatif::ProgressBar {
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} {{bar:40}} {{pos}}/{{len}} {what}"
    )) {
        bar.set_style(style);
    }
    bar
}

fn store_command(cmd: StoreCommand) -> anyhow::Result<()> {
    use crate::store::backup;
    match cmd {
        StoreCommand::Export { data, store, out } => {
            let config = store.config(&data)?;
            let s = config
                .open()
                .with_context(|| format!("opening {}", config.describe()))?;
            let bar = progress_bar(Some(s.case_count()?), "cases");
            let moved = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    backup::export(&*s, std::io::BufWriter::new(file), &|n| bar.set_position(n))?
                }
                None => backup::export(
                    &*s,
                    std::io::BufWriter::new(std::io::stdout().lock()),
                    &|n| bar.set_position(n),
                )?,
            };
            bar.finish_and_clear();
            eprintln!(
                "exported {} cases and {} events from {} ({} lines)",
                moved.cases,
                moved.events,
                config.describe(),
                moved.lines
            );
            Ok(())
        }
        StoreCommand::Import { data, store, file } => {
            let config = store.config(&data)?;
            if let crate::store::StoreConfig::Sled(c) = &config
                && let Some(parent) = c.path.parent()
            {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let s = config
                .open()
                .with_context(|| format!("opening {}", config.describe()))?;
            let bar = progress_bar(None, "lines");
            let moved = match file {
                Some(path) => {
                    let f = std::fs::File::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    backup::import(&*s, std::io::BufReader::new(f), &|n| bar.set_position(n))?
                }
                None => backup::import(&*s, std::io::stdin().lock(), &|n| bar.set_position(n))?,
            };
            bar.finish_and_clear();
            let report = s.check_consistency()?;
            eprintln!(
                "imported {} cases and {} events into {}; consistency: {} cases, {} events, {} problems",
                moved.cases,
                moved.events,
                config.describe(),
                report.cases,
                report.events,
                report.problems.len()
            );
            if !report.problems.is_empty() {
                anyhow::bail!(
                    "the imported store is not consistent: {}",
                    report.problems.join("; ")
                );
            }
            close_store(s, &config);
            Ok(())
        }
        StoreCommand::Archive {
            data,
            store,
            keep_years,
            closed_before,
            out,
        } => {
            use crate::store::retention::{self, Policy};
            let now = crate::clock::Clock::now(&crate::clock::SystemClock);
            let policy = match (keep_years, closed_before) {
                (Some(years), _) => Policy::keep_years(now, years)?,
                (None, Some(date)) => Policy::closed_before(&date, now)?,
                (None, None) => anyhow::bail!("give --keep-years N or --closed-before DATE"),
            };
            let config = store.config(&data)?;
            let s = config
                .open()
                .with_context(|| format!("opening {}", config.describe()))?;
            let bar = progress_bar(None, "cases archived");
            let run = retention::run(&*s, &policy, &out, "cli", now, &|n| {
                bar.set_position(n);
                true
            })?;
            bar.finish_and_clear();
            close_store(s, &config);
            if run.cases == 0 {
                eprintln!(
                    "no finished case was last changed before {}: nothing archived, no file written",
                    crate::calendar::format_datetime(run.closed_before, 0)
                );
                return Ok(());
            }
            eprintln!(
                "archived {} finished cases ({} events) last changed before {} to {} ({} bytes, sha256 {}); {} changed meanwhile and stayed",
                run.cases,
                run.events,
                crate::calendar::format_datetime(run.closed_before, 0),
                run.archive,
                run.bytes,
                run.sha256,
                run.kept_changed
            );
            println!("{}", serde_json::to_string(&run)?);
            Ok(())
        }
        StoreCommand::Compact { data, store } => {
            let crate::store::StoreConfig::Sled(sled) = store.config(&data)? else {
                anyhow::bail!(
                    "only a sled store is compacted this way; PostgreSQL reclaims space itself (autovacuum, or VACUUM FULL)"
                );
            };
            if !sled.path.exists() {
                anyhow::bail!("{} holds no store", sled.path.display());
            }
            let bar = progress_bar(None, "cases copied");
            let done = crate::store::sled::compact::compact(&sled, &|n| bar.set_position(n))
                .with_context(|| {
                    format!(
                        "compacting {} (stop the server using it first)",
                        sled.path.display()
                    )
                })?;
            bar.finish_and_clear();
            eprintln!(
                "compacted {}: {} cases and {} events; {} MB -> {} MB",
                sled.path.display(),
                done.cases,
                done.events,
                done.bytes_before >> 20,
                done.bytes_after >> 20
            );
            println!("{}", serde_json::to_string(&done)?);
            Ok(())
        }
        StoreCommand::Archives { data, store } => {
            let config = store.config(&data)?;
            let s = config
                .open()
                .with_context(|| format!("opening {}", config.describe()))?;
            for run in crate::store::retention::runs(&*s)? {
                println!("{}", serde_json::to_string(&run)?);
            }
            Ok(())
        }
        StoreCommand::Check { data, store } => {
            let config = store.config(&data)?;
            let s = config
                .open()
                .with_context(|| format!("opening {}", config.describe()))?;
            let r = s.check_consistency()?;
            println!(
                "{}",
                serde_json::json!({
                    "store": config.describe(),
                    "cases": r.cases,
                    "events": r.events,
                    "index_entries": r.index_entries,
                    "problems": r.problems,
                })
            );
            if !r.problems.is_empty() {
                anyhow::bail!("{} problems found", r.problems.len());
            }
            Ok(())
        }
    }
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Issue a city admin token straight into the store, for an operator locked out of the
    /// API (every admin token revoked, expired or lost). Prints the token once.
    Token {
        /// Data directory of the store.
        #[arg(long, default_value = "./civic-data", env = "CIVIC_DATA")]
        data: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// A label for the token.
        #[arg(long, default_value = "operator recovery")]
        name: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

fn admin(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Token {
            data,
            store,
            name,
            days,
        } => {
            let config = store.config(&data)?;
            if let crate::store::StoreConfig::Sled(c) = &config
                && !c.path.exists()
            {
                anyhow::bail!(
                    "{} holds no store; start `civic serve --data {}` once to create one",
                    data.display(),
                    data.display()
                );
            }
            let store = config.open().with_context(|| {
                format!(
                    "opening the store at {} (stop the server using it first)",
                    config.describe()
                )
            })?;
            let new = crate::auth::NewToken {
                name,
                role: crate::auth::Role::CityAdmin,
                district: None,
                unit: None,
                expires_in_days: Some(days),
            };
            let now = crate::clock::Clock::now(&crate::clock::SystemClock);
            let (token, secret) = crate::auth::issue(&*store, None, &new, now)?;
            eprintln!("issued city admin token {} ({})", token.id, token.name);
            println!("{secret}");
            Ok(())
        }
    }
}

/// Runs the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            data,
            store,
            listen,
            cache_mb,
            sweep_ms,
            calendar,
            keep_years,
            archive_dir,
            node,
        } => store.config(&data).and_then(|store| {
            let retention = keep_years.map(|keep_years| crate::archiver::RetentionConfig {
                keep_years,
                dir: archive_dir.unwrap_or_else(|| data.join("archives")),
            });
            serve(Serve {
                store,
                data,
                listen,
                cache_mb,
                sweep_every: Duration::from_millis(sweep_ms),
                calendar,
                retention,
                node,
            })
        }),
        Command::Plugin(cmd) => crate::author::run(cmd),
        Command::Admin(cmd) => admin(cmd),
        Command::Store(cmd) => store_command(cmd),
        Command::Replay {
            case,
            server,
            token,
        } => crate::author::replay(&case, &server, &token),
        Command::Backtest {
            district,
            hook,
            version,
            from,
            to,
            slices,
            server,
            token,
        } => crate::author::backtest(&crate::author::BacktestArgs {
            district,
            hook,
            version,
            from,
            to,
            slices,
            server,
            token,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM (what a service manager sends).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `civic serve`'s options.
struct Serve {
    data: PathBuf,
    store: crate::store::StoreConfig,
    listen: SocketAddr,
    cache_mb: u64,
    sweep_every: Duration,
    calendar: Option<PathBuf>,
    retention: Option<crate::archiver::RetentionConfig>,
    node: Option<String>,
}

fn serve(opts: Serve) -> anyhow::Result<()> {
    let Serve {
        data,
        store,
        listen,
        cache_mb,
        sweep_every,
        calendar,
        retention,
        node,
    } = opts;
    let mut config = ServiceConfig::new(&data);
    config.store = store;
    if let Some(sled) = config.sled_mut() {
        sled.cache_bytes = cache_mb << 20;
    }
    config.calendar_file = calendar;
    // Checked before anything is created, as the other settings are.
    if let Some(n) = &node {
        crate::service::check_node(n)?;
    }
    config.node = node;
    let svc = Service::open_default(&config).with_context(|| {
        format!(
            "opening the data directory {} and the store {}",
            data.display(),
            config.store.describe()
        )
    })?;
    let boot = svc.bootstrap(&data).context("setting up the sample city")?;
    for d in &boot.deployed {
        tracing::info!(slot = %d, "deployed bundled plug-in");
    }
    if let Some(token) = &boot.admin_token {
        println!(
            "admin token (shown once; also in {}): {token}",
            data.join("admin-token").display()
        );
    }
    tracing::info!(node = svc.node(), store = %config.store.describe(), "host started");
    let svc = Arc::new(svc);
    let last_flush = svc.clone();
    let follower = crate::follower::Follower::start(svc.clone(), crate::follower::EVERY)
        .context("starting the follower of other hosts' changes")?;
    let sweeper = Sweeper::start(svc.clone(), sweep_every).context("starting the timer sweeper")?;
    let archiver = match retention {
        Some(r) => {
            tracing::info!(keep_years = r.keep_years, dir = %r.dir.display(), "retention policy on");
            Some(
                crate::archiver::Archiver::start(svc.clone(), r, crate::archiver::EVERY)
                    .context("starting the retention policy")?,
            )
        }
        None => None,
    };
    // The counts of each ended day, kept as days end (and, after an upgrade, for the last
    // two months), so that an assessment is answered from them from its first asking.
    let day_keeper = {
        let svc = svc.clone();
        crate::periodic::Periodic::start(
            "civic-assessment",
            std::time::Duration::from_secs(600),
            move |_| {
                match crate::views::keep_ended_days(&svc, 62) {
                    Ok(0) => {}
                    Ok(days) => tracing::info!(days, "kept the assessment counts of ended days"),
                    Err(e) => tracing::warn!(error = %e, "could not keep the assessment counts of ended days; trying again later"),
                }
                false
            },
        )
        .context("starting the keeper of assessment day counts")?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        println!("civic-rules listening on http://{}", listener.local_addr()?);
        crate::api::serve(
            listener,
            app(svc, ApiConfig::default()),
            crate::api::ServerConfig::default(),
            shutdown_signal(),
        )
        .await?;
        anyhow::Ok(())
    })?;
    // Let a sweep in progress finish its write, and a retention run its batch, before the
    // store closes.
    sweeper.stop();
    follower.stop();
    day_keeper.stop();
    if let Some(a) = archiver {
        a.stop();
    }
    drop(runtime);
    if let Err(e) = last_flush.registry().flush_shadows() {
        tracing::warn!(error = %e, "shadow statistics counted since the last half second were not stored");
    }
    // Every handle on the store is gone with the runtime, the workers and this one.
    drop(last_flush);
    checkpoint(&config.store);
    Ok(())
}

/// Closes a store a command opened and makes it quick to open next time.
fn close_store(store: Arc<dyn crate::store::CaseStore>, config: &crate::store::StoreConfig) {
    drop(store);
    checkpoint(config);
}

/// [`crate::store::StoreConfig::checkpoint`] on a closed store, said in the log.
fn checkpoint(config: &crate::store::StoreConfig) {
    let t = std::time::Instant::now();
    match config.checkpoint() {
        Ok(true) => tracing::info!(
            ms = t.elapsed().as_millis() as u64,
            "store checkpointed for a quick next start"
        ),
        Ok(false) => {}
        // Nothing is lost: the next start reads the log instead.
        Err(e) => tracing::warn!(
            error = %e,
            "could not checkpoint the store; the next start-up reads its log"
        ),
    }
}
