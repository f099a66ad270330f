//! The one place that turns a [`Config`] into running parts: the state
//! store ([`open_store`]), the usage ledger beside it ([`open_ledger`]) and
//! the presigner with its upload target ([`open_presigner`]). `serve`, `quota`, `table create` and the Lambda
//! function all go through here, and the AWS configuration is loaded at most
//! once per process ([`Aws`]), only if something needs it.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use uploadgate_core::usage::{
    Appended, Cursor, Ledger, MemoryLedger, UsagePage, UsageQuery, UsageRecord,
};
use uploadgate_core::{
    CasOutcome, MemoryStore, StateKey, Store, StoreError, Timestamp, Versioned, Write,
};
use uploadgate_dynamodb::DynamoStore;
use uploadgate_s3::Presigner;

use crate::config::{Config, StoreKind, TargetKind};

/// The standard AWS configuration (region, credentials chain, endpoints),
/// loaded on first use and shared.
#[derive(Debug, Default)]
pub struct Aws {
    sdk: tokio::sync::OnceCell<SdkConfig>,
}

impl Aws {
    /// Nothing loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration, loading it the first time.
    pub async fn config(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await
    }

    /// A DynamoDB client with the store's timeouts and retries.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        uploadgate_dynamodb::sdk_client(self.config().await)
    }
}

/// The limiter the gate decides with, on whichever store (and the one its
/// settlers settle with).
pub type GateLimiter =
    uploadgate_core::Limiter<AnyStore, std::sync::Arc<dyn uploadgate_core::Clock>>;

/// Why a store, target or listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file store could not be opened.
    #[cfg(feature = "local")]
    #[error(transparent)]
    File(#[from] uploadgate_store_file::OpenError),
    /// The local bucket could not be opened.
    #[cfg(feature = "local")]
    #[error(transparent)]
    LocalBucket(#[from] uploadgate_s3::LocalServeError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({setting})")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The setting that named it.
        setting: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration asks for something this binary was built without.
    #[error("{what} is not built into this binary (cargo feature `{feature}`)")]
    NotBuilt {
        /// What is missing.
        what: &'static str,
        /// The cargo feature of `uploadgate-app` that builds it in.
        feature: &'static str,
    },
    /// Upload mode lacks a part it settles with (the configuration checks
    /// refuse this first).
    #[error("UPLOADGATE_CHARGE=upload needs {0}")]
    UploadMode(&'static str),
}

/// Every store, behind one type: the handlers, the CLI and the Lambda
/// function hold this, so the choice of store is made once, here.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// In process memory.
    Memory(MemoryStore),
    /// The embedded file store.
    #[cfg(feature = "local")]
    File(uploadgate_store_file::FileStore),
    /// DynamoDB.
    Dynamo(DynamoStore),
}

/// Runs `$call` on whichever store `$self` holds.
macro_rules! each {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($s) => $call,
            #[cfg(feature = "local")]
            AnyStore::File($s) => $call,
            AnyStore::Dynamo($s) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn load(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        each!(self, s => s.load(keys).await)
    }

    async fn load_cached(&self, keys: &[StateKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        each!(self, s => s.load_cached(keys).await)
    }

    async fn refresh_for_denial(
        &self,
        keys: &[StateKey],
    ) -> Result<Option<Vec<Option<Versioned>>>, StoreError> {
        each!(self, s => s.refresh_for_denial(keys).await)
    }

    async fn compare_and_swap(&self, writes: Vec<Write>) -> Result<CasOutcome, StoreError> {
        each!(self, s => s.compare_and_swap(writes).await)
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        each!(self, s => s.purge_expired(now).await)
    }
}

/// Resetting quotas is an operator's action (feature `admin`, which the
/// CLI enables and the Lambda function does not).
#[cfg(feature = "admin")]
impl uploadgate_core::Reset for AnyStore {
    async fn delete(&self, key: &StateKey) -> Result<bool, StoreError> {
        each!(self, s => s.delete(key).await)
    }
}

impl AnyStore {
    /// What it is and where, for start-up lines.
    pub fn describe(&self) -> String {
        match self {
            AnyStore::Memory(_) => "memory (state is lost on exit)".into(),
            #[cfg(feature = "local")]
            AnyStore::File(f) => format!("file at {}", f.path().display()),
            AnyStore::Dynamo(d) => format!("dynamodb table {}", d.table()),
        }
    }
}

/// Opens the configured store.
pub async fn open_store(config: &Config, aws: &Aws) -> Result<AnyStore, OpenError> {
    Ok(match &config.store {
        StoreKind::Memory => AnyStore::Memory(MemoryStore::new()),
        #[cfg(feature = "local")]
        StoreKind::File => {
            AnyStore::File(uploadgate_store_file::FileStore::open(&config.data_dir)?)
        }
        #[cfg(not(feature = "local"))]
        StoreKind::File => {
            return Err(OpenError::NotBuilt {
                what: "the file store",
                feature: "local",
            });
        }
        StoreKind::Dynamodb {
            table, denial_ttl, ..
        } => AnyStore::Dynamo(dynamo_store(aws, table, *denial_ttl).await),
    })
}

async fn dynamo_store(aws: &Aws, table: &str, denial_ttl: Duration) -> DynamoStore {
    DynamoStore::new(aws.dynamodb().await, table).with_denial_ttl(denial_ttl)
}

/// Every usage ledger, behind one type, as [`AnyStore`] is for stores.
/// Cheap to clone: clones share the records.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyLedger {
    /// In process memory, beside the memory store.
    Memory(Arc<MemoryLedger>),
    /// In the file store's database.
    #[cfg(feature = "local")]
    File(uploadgate_store_file::FileLedger),
    /// On a DynamoDB table of its own (`UPLOADGATE_USAGE_TABLE`).
    #[cfg(feature = "ledger")]
    Dynamo(uploadgate_dynamodb::DynamoLedger),
}

/// Runs `$call` on whichever ledger `$self` holds.
macro_rules! each_ledger {
    ($self:expr, $l:ident => $call:expr) => {
        match $self {
            AnyLedger::Memory($l) => $call,
            #[cfg(feature = "local")]
            AnyLedger::File($l) => $call,
            #[cfg(feature = "ledger")]
            AnyLedger::Dynamo($l) => $call,
        }
    };
}

impl Ledger for AnyLedger {
    async fn append(&self, record: &UsageRecord) -> Result<Appended, StoreError> {
        each_ledger!(self, l => l.append(record).await)
    }

    async fn page(
        &self,
        query: &UsageQuery,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<UsagePage, StoreError> {
        each_ledger!(self, l => l.page(query, after, limit).await)
    }
}

impl AnyLedger {
    /// What it is and where, for start-up lines.
    pub fn describe(&self) -> String {
        match self {
            AnyLedger::Memory(_) => "memory (lost on exit)".into(),
            #[cfg(feature = "local")]
            AnyLedger::File(_) => "in the file store".into(),
            #[cfg(feature = "ledger")]
            AnyLedger::Dynamo(d) => format!("dynamodb table {}", d.table()),
        }
    }
}

/// The usage ledger that goes with `store`: the memory store's in memory,
/// the file store's in its own database file, the DynamoDB store's on
/// `UPLOADGATE_USAGE_TABLE` (none without it, and then upload mode is
/// refused and `GET /v1/usage` answers 404).
pub async fn open_ledger(
    config: &Config,
    aws: &Aws,
    store: &AnyStore,
) -> Result<Option<AnyLedger>, OpenError> {
    let usage_table = match &config.store {
        StoreKind::Dynamodb { usage_table, .. } => usage_table.as_deref(),
        _ => None,
    };
    Ok(match (store, usage_table) {
        (AnyStore::Memory(_), _) => Some(AnyLedger::Memory(Arc::new(MemoryLedger::new()))),
        #[cfg(feature = "local")]
        (AnyStore::File(f), _) => Some(AnyLedger::File(f.ledger())),
        (AnyStore::Dynamo(_), None) => None,
        #[cfg(feature = "ledger")]
        (AnyStore::Dynamo(_), Some(table)) => Some(AnyLedger::Dynamo(
            uploadgate_dynamodb::DynamoLedger::new(aws.dynamodb().await, table),
        )),
        #[cfg(not(feature = "ledger"))]
        (AnyStore::Dynamo(_), Some(_)) => {
            let _ = aws;
            return Err(OpenError::NotBuilt {
                what: "the DynamoDB usage ledger",
                feature: "ledger",
            });
        }
    })
}

/// The embedded bucket of `serve`, bound and ready to run.
#[cfg(feature = "local")]
#[derive(Debug)]
pub struct LocalTarget {
    /// Its URL, `http://ip:port`.
    pub endpoint: String,
    bucket: uploadgate_s3::LocalBucket,
    listener: tokio::net::TcpListener,
    credentials: uploadgate_s3::LocalCredentials,
}

#[cfg(feature = "local")]
impl LocalTarget {
    /// The bucket (to report its stored objects to the settle step).
    pub fn bucket(&self) -> &uploadgate_s3::LocalBucket {
        &self.bucket
    }

    /// Serves the bucket until `shutdown` resolves, under the same limits
    /// as the API.
    pub async fn serve(
        self,
        limits: crate::server::Limits,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        // s3s wants a body whose error is a `std::error::Error`.
        let service = tower::ServiceBuilder::new()
            .map_request(
                |req: http::Request<tower_http::timeout::TimeoutBody<hyper::body::Incoming>>| {
                    req.map(|b| http_body_util::BodyExt::map_err(b, std::io::Error::other))
                },
            )
            .service(self.bucket.service(self.credentials));
        crate::server::serve(self.listener, service, limits, shutdown).await;
    }
}

/// The presigner, and for target `local` the bucket it signs for (which
/// the caller runs). The presigner is warmed up: credentials resolved and
/// the URL shape learnt, so the first request does not pay for it.
pub async fn open_presigner(
    config: &Config,
    aws: &Aws,
) -> Result<(Presigner, Option<LocalTargetHandle>), OpenError> {
    let (presigner, local) = match config.target {
        TargetKind::S3 => (
            Presigner::from_sdk_config(aws.config().await, config.bucket.clone(), config.url_ttl),
            None,
        ),
        #[cfg(feature = "local")]
        TargetKind::Local => {
            let listener = tokio::net::TcpListener::bind(config.s3_listen)
                .await
                .map_err(|source| OpenError::Listen {
                    addr: config.s3_listen,
                    setting: "UPLOADGATE_S3_LISTEN",
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| OpenError::Listen {
                addr: config.s3_listen,
                setting: "UPLOADGATE_S3_LISTEN",
                source,
            })?;
            let endpoint = format!("http://{addr}");
            let credentials = uploadgate_s3::LocalCredentials::generate();
            let bucket = uploadgate_s3::LocalBucket::open(&config.data_dir, &config.bucket)?;
            let presigner = Presigner::for_local(
                &endpoint,
                &credentials,
                config.bucket.clone(),
                config.url_ttl,
            );
            (
                presigner,
                Some(LocalTarget {
                    endpoint,
                    bucket,
                    listener,
                    credentials,
                }),
            )
        }
        #[cfg(not(feature = "local"))]
        TargetKind::Local => {
            return Err(OpenError::NotBuilt {
                what: "the local bucket",
                feature: "local",
            });
        }
    };
    presigner.warm_up().await;
    Ok((presigner, local))
}

/// [`LocalTarget`] where it is built, and nothing otherwise.
#[cfg(feature = "local")]
pub type LocalTargetHandle = LocalTarget;
/// [`LocalTarget`] where it is built, and nothing otherwise.
#[cfg(not(feature = "local"))]
pub type LocalTargetHandle = std::convert::Infallible;
