//! The commands, each a thin composition of the library crates.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use uploadgate_app::queue::open_poller;
use uploadgate_app::settle::{LogHandOff, serve_state};
use uploadgate_app::{
    Aws, Config, SettingError, StoreKind, open_ledger, open_presigner, open_store, server,
    telemetry,
};
use uploadgate_core::{Clock, Limiter, Policy, StateKey, Subject, Subjects, SystemClock, UserId};
use uploadgate_dynamodb::Created;
use uploadgate_http::{ClientIpSource, router};

use uploadgate_store_file::FileStore;

use crate::cli::{
    Command, ConfigCommand, ExportArgs, Invocation, QuotaCommand, TableCommand, UsageCommand,
};
use crate::export;

/// How often idle quota state is swept from the local stores.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Runs one command.
pub async fn run(inv: Invocation) -> Result<()> {
    match inv.command {
        Command::Serve => serve(inv.config).await,
        Command::Quota(q) => quota(inv.config, q).await,
        Command::Config(ConfigCommand::Check) => {
            for (name, value, source) in &inv.effective {
                println!("{name:<28} {value:<40} ({source})");
            }
            for l in inv.config.gate.policy.limits() {
                println!("limit      {l}");
            }
            println!("configuration ok");
            Ok(())
        }
        Command::Table(TableCommand::Create) => table_create(inv.config).await,
        Command::Settle => settle(inv.config).await,
        Command::Usage(UsageCommand::Export(args)) => usage_export(inv.config, args).await,
    }
}

/// `usage export`: the arguments are checked first, then the ledger is
/// opened as `serve` opens it, then records stream to stdout.
async fn usage_export(config: Config, args: ExportArgs) -> Result<()> {
    let (query, format) = args.checked()?;
    match &config.store {
        StoreKind::Memory => anyhow::bail!(
            "the memory store keeps its usage ledger inside a running server, lost on exit: nothing to export (use --store file or dynamodb)"
        ),
        // Opening the file store creates it; an export must not.
        StoreKind::File => {
            let path = config.data_dir.join(FileStore::FILE_NAME);
            if !path.exists() {
                anyhow::bail!(
                    "no file store at {}: nothing was recorded there (is UPLOADGATE_DATA_DIR / --data-dir right?)",
                    path.display()
                );
            }
        }
        StoreKind::Dynamodb { usage_table, .. } => {
            if usage_table.is_none() {
                return Err(SettingError::new(
                    "UPLOADGATE_USAGE_TABLE",
                    "the dynamodb store keeps usage in its own table: name it to export from it",
                )
                .into());
            }
        }
    }
    let aws = Aws::new();
    let store = open_store(&config, &aws).await?;
    let ledger = open_ledger(&config, &aws, &store)
        .await?
        .context("this store keeps no usage ledger")?;
    let n = export::export(&ledger, &query, format, std::io::stdout().lock()).await?;
    eprintln!("uploadgate: exported {n} usage records");
    Ok(())
}

async fn table_create(config: Config) -> Result<()> {
    let StoreKind::Dynamodb {
        table, usage_table, ..
    } = &config.store
    else {
        anyhow::bail!(
            "`table create` is for the dynamodb store: set UPLOADGATE_STORE=dynamodb and UPLOADGATE_TABLE"
        );
    };
    let client = Aws::new().dynamodb().await;
    match uploadgate_dynamodb::create_table(&client, table).await? {
        Created::New => println!("table {table}: created (on-demand, pk, TTL on expireAt)"),
        Created::Existing => println!("table {table}: exists (TTL on expireAt)"),
    }
    if let Some(usage) = usage_table {
        match uploadgate_dynamodb::create_usage_table(&client, usage).await? {
            Created::New => println!("table {usage}: created (usage ledger: user, sk, by_month)"),
            Created::Existing => println!("table {usage}: exists (usage ledger)"),
        }
    }
    Ok(())
}

async fn serve(config: Config) -> Result<()> {
    // Behind CloudFront, only a request that proves it came through
    // CloudFront may name its viewer's address.
    if config.gate.client_ip == ClientIpSource::CloudFront && config.gate.origin_secret.is_none() {
        return Err(SettingError::new(
            "UPLOADGATE_ORIGIN_SECRET",
            "`serve` with UPLOADGATE_CLIENT_IP=cloudfront needs the secret CloudFront adds as `x-origin-verify`; otherwise any caller could name any viewer address",
        )
        .into());
    }
    telemetry::init(&config)?;
    let (limits, lowered) = config.server.fit_open_files(2);
    if lowered {
        tracing::warn!(
            max_connections = limits.max_connections,
            "UPLOADGATE_MAX_CONNECTIONS lowered to fit the open-file limit"
        );
    }
    let aws = Aws::new();
    let api = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (UPLOADGATE_LISTEN)", config.listen))?;
    let (presigner, local) = open_presigner(&config, &aws).await?;
    let store = open_store(&config, &aws).await?;
    println!("uploadgate: store {}", store.describe());
    let ledger = open_ledger(&config, &aws, &store).await?;
    if let Some(l) = &ledger {
        println!("uploadgate: usage ledger {}", l.describe());
    }
    for l in config.gate.policy.limits() {
        println!("uploadgate: limit {l}");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (state, limiter) = serve_state(
        &config,
        store,
        ledger.clone(),
        clock,
        presigner,
        local.as_ref(),
        LogHandOff::default(),
    )?;
    match (config.gate.settlement, &ledger, &local) {
        (None, _, _) => println!("uploadgate: charging on grant"),
        (Some(grace), _, Some(_)) => println!(
            "uploadgate: charging on upload (settled in-process; unsettled grants released {} s after their URL expires)",
            grace.as_secs()
        ),
        (Some(grace), Some(ledger), None) => {
            let poller = open_poller(&config, &aws, limiter, ledger.clone()).await?;
            println!(
                "uploadgate: charging on upload (settled from S3 events on {}; unsettled grants released {} s after their URL expires)",
                poller.queue_url(),
                grace.as_secs()
            );
            println!("uploadgate: {}", hand_off_line(&config));
            tokio::spawn(async move { poller.run(shutdown_signal()).await });
        }
        (Some(_), None, None) => {
            anyhow::bail!("upload mode needs a usage ledger (UPLOADGATE_USAGE_TABLE)")
        }
    }
    match local {
        Some(bucket) => {
            println!(
                "uploadgate: local bucket \"{}\" at {}",
                config.bucket, bucket.endpoint
            );
            tokio::spawn(bucket.serve(limits, shutdown_signal()));
        }
        None => println!("uploadgate: signing for S3 bucket \"{}\"", config.bucket),
    }
    state.warm_up().await;
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            match sweeper.meter().purge_expired().await {
                Ok(n) if n > 0 => tracing::debug!(keys = n, "purged idle quota state"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging idle quota state failed"),
            }
        }
    });
    println!("uploadgate: api listening on http://{}", api.local_addr()?);
    server::serve(api, router(state), limits, shutdown_signal()).await;
    Ok(())
}

/// Where accepted uploads go, for start-up lines.
fn hand_off_line(config: &Config) -> String {
    match &config.accepted_queue_url {
        Some(url) => format!("accepted uploads go to {url}"),
        None => "accepted uploads are logged (`upload accepted`); set UPLOADGATE_ACCEPTED_QUEUE_URL to queue them".into(),
    }
}

/// `uploadgate settle`: the poller of S3's events, on its own, for gates
/// that share a dynamodb table.
async fn settle(config: Config) -> Result<()> {
    if config.gate.settlement.is_none() {
        return Err(SettingError::new(
            "UPLOADGATE_CHARGE",
            "`uploadgate settle` settles the reservations of upload mode: set UPLOADGATE_CHARGE=upload, as the gates have it",
        )
        .into());
    }
    if config.settle_queue_url.is_none() {
        return Err(SettingError::new(
            "UPLOADGATE_SETTLE_QUEUE_URL",
            "`uploadgate settle` needs the SQS queue of the bucket's s3:ObjectCreated:* events (--queue-url URL)",
        )
        .into());
    }
    if !matches!(config.store, StoreKind::Dynamodb { .. }) {
        return Err(SettingError::new(
            "UPLOADGATE_STORE",
            "`uploadgate settle` works on the gates' dynamodb table; the memory and file stores belong to one `serve` process, which settles by itself",
        )
        .into());
    }
    telemetry::init(&config)?;
    let aws = Aws::new();
    let store = open_store(&config, &aws).await?;
    println!("uploadgate: store {}", store.describe());
    let ledger = open_ledger(&config, &aws, &store)
        .await?
        .context("upload mode on the dynamodb store needs UPLOADGATE_USAGE_TABLE")?;
    println!("uploadgate: usage ledger {}", ledger.describe());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let limiter = uploadgate_http::limiter(&config.gate, store, clock);
    let poller = open_poller(&config, &aws, limiter, ledger).await?;
    println!("uploadgate: {}", hand_off_line(&config));
    println!("uploadgate: settling S3 events from {}", poller.queue_url());
    poller.run(shutdown_signal()).await;
    Ok(())
}

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
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn quota(config: Config, cmd: QuotaCommand) -> Result<()> {
    if config.store == StoreKind::Memory {
        anyhow::bail!("the memory store lives inside a running server; use --store file");
    }
    // Only user limits are keyed by user; ip limits are not shown here.
    let user_limits = config
        .gate
        .policy
        .limits()
        .iter()
        .filter(|l| l.subject == Subject::User)
        .cloned()
        .collect();
    let policy = Arc::new(Policy::new(user_limits).context("the policy has no user limits")?);
    let store = open_store(&config, &Aws::new()).await?;
    let limiter = Limiter::new(policy, store, SystemClock);
    match cmd {
        QuotaCommand::Show { user } => {
            let user = UserId::parse(&user).context("invalid user id")?;
            let d = limiter
                .peek(&Subjects {
                    user: user.clone(),
                    ip: None,
                })
                .await?;
            println!("{user}");
            for l in &d.limits {
                println!(
                    "  {:<12} {} of {} left ({}), next frees in {}s",
                    l.limit.name.as_str(),
                    l.remaining,
                    l.limit.amount.value,
                    l.limit.amount.unit.as_str(),
                    l.reset_after.as_millis().div_ceil(1000)
                );
            }
        }
        QuotaCommand::Reset { user } => {
            let user = UserId::parse(&user).context("invalid user id")?;
            if limiter.reset(&StateKey::user(&user)).await? {
                println!("reset: {user}'s usage is forgotten; every user limit is full again");
            } else {
                println!("reset: {user} had no recorded usage");
            }
        }
    }
    Ok(())
}
