//! The commands, each a thin composition of the library crates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use uploadgate_core::{Clock, Limiter, Policy, StateKey, Store, Subject, SystemClock, UserId};
use uploadgate_http::config::{StoreKind, TargetKind};
use uploadgate_http::{AppState, Config, RawConfig, router};
use uploadgate_s3::{LocalBucket, LocalCredentials, Presigner};
use uploadgate_store_file::FileStore;

use uploadgate_dynamodb::{Created, DynamoStore};

use crate::cli::{Cli, Command, ConfigCommand, QuotaCommand, StoreArg, TableCommand};

/// How often idle quota state is swept from the local stores.
const PURGE_EVERY: Duration = Duration::from_secs(60);

fn load_config(cli: &Cli) -> Result<Config> {
    let mut raw = match &cli.global.config {
        Some(path) => RawConfig::from_toml_file(path)?,
        None => RawConfig::default(),
    }
    .overlay_env(|k| std::env::var(k).ok());
    if let Some(d) = &cli.global.data_dir {
        raw.set("UPLOADGATE_DATA_DIR", d.to_string_lossy());
    }
    if let Some(s) = cli.global.store {
        raw.set(
            "UPLOADGATE_STORE",
            match s {
                StoreArg::File => "file",
                StoreArg::Memory => "memory",
                StoreArg::Dynamodb => "dynamodb",
            },
        );
    }
    if let Command::Serve(args) = &cli.command {
        if let Some(a) = args.listen {
            raw.set("UPLOADGATE_LISTEN", a.to_string());
        }
        if let Some(a) = args.s3_listen {
            raw.set("UPLOADGATE_S3_LISTEN", a.to_string());
        }
    }
    Ok(raw.validate()?)
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let config = load_config(&cli)?;
    match cli.command {
        Command::Serve(_) => serve(config).await,
        Command::Quota(q) => quota(config, q).await,
        Command::Config(ConfigCommand::Check) => {
            print_config(&config);
            println!("configuration ok");
            Ok(())
        }
        Command::Table(TableCommand::Create) => table_create(config).await,
    }
}

async fn table_create(config: Config) -> Result<()> {
    let StoreKind::Dynamodb { table, .. } = &config.store else {
        anyhow::bail!(
            "`table create` is for the dynamodb store: set UPLOADGATE_STORE=dynamodb and UPLOADGATE_TABLE"
        );
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = uploadgate_dynamodb::sdk_client(&sdk);
    match uploadgate_dynamodb::create_table(&client, table).await? {
        Created::New => println!("table {table}: created (on-demand, pk, TTL on expireAt)"),
        Created::Existing => println!("table {table}: exists (TTL on expireAt)"),
    }
    Ok(())
}

async fn dynamo_store(table: &str, denial_ttl: Duration) -> DynamoStore {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    DynamoStore::new(uploadgate_dynamodb::sdk_client(&sdk), table).with_denial_ttl(denial_ttl)
}

fn print_config(c: &Config) {
    for l in c.gate.policy.limits() {
        println!("limit      {l}");
    }
    println!("max size   {} bytes", c.gate.max_object_bytes);
    println!("types      {}", c.gate.content_types.join(", "));
    println!("url ttl    {}s", c.url_ttl.as_secs());
    println!("bucket     {} (prefix {:?})", c.bucket, c.gate.key_prefix);
    println!("identity   {:?}", c.gate.identity);
    match &c.store {
        StoreKind::Dynamodb { table, denial_ttl } => println!(
            "store      dynamodb table {table} (cached denials trusted {}s)",
            denial_ttl.as_secs_f64()
        ),
        other => println!("store      {other:?} in {}", c.data_dir.display()),
    }
    println!("target     {:?}", c.target);
}

async fn serve(config: Config) -> Result<()> {
    uploadgate_http::telemetry::init(&config)?;
    let api = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (UPLOADGATE_LISTEN)", config.listen))?;
    let presigner = match config.target {
        TargetKind::Local => {
            let s3 = TcpListener::bind(config.s3_listen).await.with_context(|| {
                format!(
                    "cannot listen on {} (UPLOADGATE_S3_LISTEN)",
                    config.s3_listen
                )
            })?;
            let endpoint = format!("http://{}", s3.local_addr()?);
            let creds = LocalCredentials::generate();
            let bucket = LocalBucket::open(&config.data_dir, &config.bucket)?;
            tokio::spawn(bucket.serve(s3, creds.clone(), shutdown_signal()));
            println!(
                "uploadgate: local bucket \"{}\" at {endpoint}",
                config.bucket
            );
            Presigner::for_local(&endpoint, &creds, config.bucket.clone(), config.url_ttl)
        }
        TargetKind::S3 => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            println!("uploadgate: signing for S3 bucket \"{}\"", config.bucket);
            Presigner::from_sdk_config(&sdk, config.bucket.clone(), config.url_ttl)
        }
    };
    presigner.warm_up().await;
    match config.store {
        StoreKind::Memory => {
            println!("uploadgate: store memory (state is lost on exit)");
            serve_with(config, uploadgate_core::MemoryStore::new(), presigner, api).await
        }
        StoreKind::File => {
            let store = FileStore::open(&config.data_dir)?;
            println!("uploadgate: store file at {}", store.path().display());
            serve_with(config, store, presigner, api).await
        }
        StoreKind::Dynamodb {
            ref table,
            denial_ttl,
        } => {
            let store = dynamo_store(table, denial_ttl).await;
            println!("uploadgate: store dynamodb table {table}");
            serve_with(config, store, presigner, api).await
        }
    }
}

async fn serve_with<S: Store>(
    config: Config,
    store: S,
    presigner: Presigner,
    api: TcpListener,
) -> Result<()> {
    for l in config.gate.policy.limits() {
        println!("uploadgate: limit {l}");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = AppState::new(config.gate, store, clock, presigner);
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            let limiter = sweeper.limiter();
            match limiter.store().purge_expired(limiter.clock().now()).await {
                Ok(n) if n > 0 => tracing::debug!(keys = n, "purged idle quota state"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging idle quota state failed"),
            }
        }
    });
    println!("uploadgate: api listening on http://{}", api.local_addr()?);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(api, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the API server failed")
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
    match config.store {
        StoreKind::Memory => {
            anyhow::bail!("the memory store lives inside a running server; use --store file")
        }
        StoreKind::File => {
            let store = FileStore::open(&config.data_dir)?;
            quota_on(Limiter::new(policy, store, SystemClock), cmd).await
        }
        StoreKind::Dynamodb { table, denial_ttl } => {
            let store = dynamo_store(&table, denial_ttl).await;
            quota_on(Limiter::new(policy, store, SystemClock), cmd).await
        }
    }
}

async fn quota_on<S: Store>(limiter: Limiter<S, SystemClock>, cmd: QuotaCommand) -> Result<()> {
    match cmd {
        QuotaCommand::Show { user } => {
            let user = UserId::parse(&user).context("invalid user id")?;
            let subjects = uploadgate_core::Subjects {
                user: user.clone(),
                ip: None,
            };
            let d = limiter.peek(&subjects).await?;
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
