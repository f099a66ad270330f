//! A DynamoDB API on loopback for the tests (see
//! `uploadgate_dynamodb::test_util::endpoint`): one table per test process,
//! and stores with their own client and cache, optionally counting calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use tokio::sync::OnceCell;
pub use uploadgate_dynamodb::test_util::{endpoint, sdk_config_for};
use uploadgate_dynamodb::{DynamoStore, client_config, create_table};

/// One table per test process, created on first use.
pub async fn table() -> &'static str {
    static TABLE: OnceCell<String> = OnceCell::const_new();
    TABLE
        .get_or_init(|| async {
            let name = format!("uploadgate-it-{:016x}", rand::random::<u64>());
            // A throwaway client: each #[tokio::test] has its own runtime,
            // and a client must not outlive the runtime it connected on.
            let client = Client::new(&sdk_config_for(&endpoint()).await);
            create_table(&client, &name).await.expect("create table");
            name
        })
        .await
}

/// A fresh store (own client, own cache) on the shared table.
pub async fn store() -> DynamoStore {
    counted_store().await.0
}

/// A fresh store whose DynamoDB calls are recorded.
pub async fn counted_store() -> (DynamoStore, Calls) {
    let table = table().await;
    let (client, calls) = counted_client().await;
    (DynamoStore::new(client, table), calls)
}

/// A client (the store's settings, with room for the emulator) whose calls
/// are recorded.
pub async fn counted_client() -> (Client, Calls) {
    let calls = Calls::default();
    // moto answers about 100 calls a second, so a burst of concurrent
    // requests queues for longer than the 1 s per attempt that suits real
    // DynamoDB; give the emulator room (the fail-fast settings are tested
    // against an unreachable endpoint).
    let conf = client_config(&sdk_config_for(&endpoint()).await)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .interceptor(calls.clone())
        .build();
    (Client::from_conf(conf), calls)
}

/// Records every request the SDK sends (retries included), by the operation
/// name the SDK itself puts in the request's config bag, the write units
/// they are billed, and the responses that report a failed condition.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    ops: Arc<Mutex<Vec<String>>>,
    /// Write units billed, and those of writes whose condition failed.
    units: Arc<Mutex<(u64, u64)>>,
    failed: Arc<Mutex<u64>>,
}

/// Write units a request is billed for an item under 1 KB: 1 per
/// `PutItem`, 2 per item of a `TransactWriteItems`, committed or not.
#[derive(Clone, Copy, Debug)]
struct Units(u64);

impl Storable for Units {
    type Storer = StoreReplace<Self>;
}

impl Calls {
    /// Operations sent since the last call, e.g. `["PutItem"]`.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }

    /// Responses since the last call that reported a failed condition
    /// (`ConditionalCheckFailedException`, or a transaction cancelled for
    /// one); each still costs write units.
    pub fn take_failed_conditions(&self) -> u64 {
        std::mem::take(&mut *self.failed.lock().unwrap())
    }

    /// Write units billed since the last call (items under 1 KB), and how
    /// many of them went to writes whose condition failed.
    pub fn take_write_units(&self) -> (u64, u64) {
        std::mem::take(&mut *self.units.lock().unwrap())
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let meta = cfg
            .load::<Metadata>()
            .ok_or("the SDK put no operation Metadata in the config bag")?;
        if meta.service() != "DynamoDB" {
            return Err(format!("a DynamoDB client sent {meta:?}").into());
        }
        let target = meta.name().to_owned();
        let body = ctx.request().body().bytes().unwrap_or_default();
        let units = match target.as_str() {
            "PutItem" => 1,
            "TransactWriteItems" => 2 * count(body, "\"Put\":") as u64,
            _ => 0,
        };
        self.units.lock().unwrap().0 += units;
        cfg.interceptor_state().store_put(Units(units));
        self.ops.lock().unwrap().push(target);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = ctx.response().body().bytes().unwrap_or_default();
        if count(body, "ConditionalCheckFailed") > 0 {
            *self.failed.lock().unwrap() += 1;
            self.units.lock().unwrap().1 += cfg.load::<Units>().map_or(0, |u| u.0);
        }
        Ok(())
    }
}

fn count(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// A store on a loopback port nothing listens on, with the production
/// client settings (fail fast).
pub async fn unreachable_store() -> DynamoStore {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sdk = sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    DynamoStore::new(uploadgate_dynamodb::sdk_client(&sdk), "nowhere")
}
