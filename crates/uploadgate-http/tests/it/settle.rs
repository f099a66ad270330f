//! Upload mode (`UPLOADGATE_CHARGE=upload`) through the router: grants are
//! reservations, settled by the core's settle step (called here as the
//! embedded bucket would) or handed back after the URL's TTL plus the
//! grace; `GET /v1/usage` reads what settled. Grant mode stays as it was.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::Request;
use serde_json::Value;
use uploadgate_core::settle::{
    Accepted, HandOff, Landed, PortError, Quarantine, QuarantineReason, Settle, Settler, Verdict,
};
use uploadgate_core::usage::MemoryLedger;
use uploadgate_core::{Clock, FakeClock, MemoryStore, Timestamp};
use uploadgate_http::AppState;

use crate::*;

const TTL: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(900);

/// Keeps what it is handed.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<Accepted>>>);

impl HandOff for Sent {
    async fn send(&self, a: &Accepted) -> Result<(), PortError> {
        self.0.lock().unwrap().push(a.clone());
        Ok(())
    }
}

/// Keeps what it is told to quarantine.
#[derive(Clone, Default)]
struct Tagged(Arc<Mutex<Vec<(String, QuarantineReason)>>>);

impl Quarantine for Tagged {
    async fn quarantine(
        &self,
        _bucket: &str,
        key: &str,
        reason: &QuarantineReason,
    ) -> Result<(), PortError> {
        self.0
            .lock()
            .unwrap()
            .push((key.to_owned(), reason.clone()));
        Ok(())
    }
}

type TestSettler = Settler<MemoryStore, Arc<dyn Clock>, Arc<MemoryLedger>, Sent, Tagged>;

/// A router in upload mode on the memory store, its settler (the same
/// limiter, the same ledger) and its clock.
pub(crate) struct UploadMode {
    pub(crate) app: Router,
    clock: FakeClock,
    settler: TestSettler,
    sent: Sent,
}

pub(crate) fn upload_mode(limits: &str) -> UploadMode {
    upload_mode_with(&[("UPLOADGATE_LIMITS", limits)])
}

/// [`upload_mode`] with more settings (identity, tiers).
pub(crate) fn upload_mode_with(env: &[(&str, &str)]) -> UploadMode {
    let mut env = env.to_vec();
    env.push(("UPLOADGATE_CHARGE", "upload"));
    let cfg = config(&env);
    assert_eq!(cfg.gate.settlement, Some(GRACE));
    assert_eq!(cfg.url_ttl, TTL);
    let clock = FakeClock::new(T0);
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let limiter = uploadgate_http::limiter(&cfg.gate, MemoryStore::new(), dyn_clock);
    let ledger = Arc::new(MemoryLedger::new());
    let sent = Sent::default();
    let settler = Settler::new(
        limiter.clone(),
        Arc::clone(&ledger),
        sent.clone(),
        Tagged::default(),
        cfg.gate.key_prefix.clone(),
        cfg.url_ttl,
    )
    .unwrap();
    let p = presigner(&cfg);
    let app = uploadgate_http::router(
        AppState::with_limiter(cfg.gate, limiter, p, None).with_usage(ledger),
    );
    UploadMode {
        app,
        clock,
        settler,
        sent,
    }
}

impl UploadMode {
    /// The object of an admitted upload landing now, as the bucket reports it.
    fn landed(&self, upload: &Reply, size: u64) -> Landed {
        Landed {
            bucket: "uploads".into(),
            key: upload.body["key"].as_str().unwrap().to_owned(),
            size,
            content_type: Some("application/pdf".into()),
            checksum_sha256: None,
            created_at: self.clock.now(),
        }
    }

    pub(crate) async fn settle(&self, upload: &Reply, size: u64) -> Verdict {
        self.settler
            .settle(&self.landed(upload, size))
            .await
            .unwrap()
    }
}

fn remaining(r: &Reply) -> u64 {
    r.body["limits"][0]["remaining"].as_u64().unwrap()
}

/// `GET /v1/usage` as `user`, with `query` (`since=...&limit=...`).
pub(crate) async fn usage(app: &Router, user: &str, query: &str) -> Reply {
    let req = Request::get(format!("/v1/usage?{query}"))
        .header("x-user-id", user)
        .body(Body::empty())
        .unwrap();
    send(app, with_peer(req, "192.0.2.10")).await
}

#[tokio::test]
async fn an_unused_url_is_handed_back_after_its_ttl_and_the_grace() {
    let m = upload_mode("uploads=user:2/1d");
    assert_eq!(remaining(&upload(&m.app, "ana", 10).await), 1);
    m.clock.advance(Duration::from_secs(60));
    assert_eq!(remaining(&upload(&m.app, "ana", 10).await), 0);
    let denied = upload(&m.app, "ana", 10).await;
    assert_eq!(denied.status, 429, "{}", denied.raw);
    assert_eq!(
        denied.body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    // Both still count until the first URL's expiry plus the grace...
    m.clock
        .advance(TTL + GRACE - Duration::from_secs(60) - Duration::from_millis(1));
    assert_eq!(remaining(&quota(&m.app, "ana").await), 0);
    // ...then the first is handed back, and the next request is admitted
    // on it (and charges again).
    m.clock.advance(Duration::from_millis(1));
    assert_eq!(remaining(&quota(&m.app, "ana").await), 1);
    let again = upload(&m.app, "ana", 10).await;
    assert_eq!(again.status, 200, "{}", again.raw);
    assert_eq!(remaining(&again), 0);
    // A minute later the second comes back too.
    m.clock.advance(Duration::from_secs(60));
    assert_eq!(remaining(&quota(&m.app, "ana").await), 1);
    assert!(m.sent.0.lock().unwrap().is_empty(), "nothing landed");
}

#[tokio::test]
async fn a_settled_upload_stays_charged_and_is_in_the_usage() {
    let m = upload_mode("uploads=user:3/1d");
    let landed = upload(&m.app, "bo", 1234).await;
    let unused = upload(&m.app, "bo", 10).await;
    assert_eq!((landed.status, unused.status), (200, 200));
    m.clock.advance(Duration::from_secs(30));
    assert_eq!(
        m.settle(&landed, 1234).await,
        Verdict::Accepted { late: false }
    );
    // Settled twice (a redelivery): nothing more.
    assert_eq!(m.settle(&landed, 1234).await, Verdict::Duplicate);
    m.clock.advance(TTL + GRACE);
    // The unused one came back; the settled one did not.
    assert_eq!(remaining(&quota(&m.app, "bo").await), 2);
    let sent = m.sent.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].key, landed.body["key"].as_str().unwrap());
    assert_eq!(sent[0].granted_at, T0);

    let u = usage(&m.app, "bo", "").await;
    assert_eq!(u.status, 200, "{}", u.raw);
    assert_eq!(u.body["user"], "bo");
    assert_eq!(
        (u.body["uploads"].as_u64(), u.body["bytes"].as_u64()),
        (Some(1), Some(1234))
    );
    let r = &u.body["records"][0];
    assert_eq!(r["key"], landed.body["key"]);
    assert_eq!(r["bytes"], 1234);
    assert_eq!(r["contentType"], "application/pdf");
    assert_eq!(r["tier"], Value::Null);
    assert_eq!(r["landedAt"], "2027-01-15T08:00:30Z");
    assert_eq!(u.body["next"], Value::Null);
    // Nobody else's.
    let other = usage(&m.app, "cy", "").await;
    assert_eq!(other.body["records"], serde_json::json!([]));
    // Reading usage consumes nothing.
    assert_eq!(remaining(&quota(&m.app, "bo").await), 2);
}

#[tokio::test]
async fn usage_pages_through_the_callers_records_in_landing_order() {
    let m = upload_mode("uploads=user:10/1d");
    for size in [100, 200, 300] {
        let up = upload(&m.app, "dee", size).await;
        m.clock.advance(Duration::from_secs(10));
        assert_eq!(m.settle(&up, size).await, Verdict::Accepted { late: false });
    }
    let first = usage(&m.app, "dee", "limit=2").await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let bytes = |r: &Reply| -> Vec<u64> {
        r.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["bytes"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(bytes(&first), [100, 200]);
    // The totals are the page's.
    assert_eq!(
        (first.body["uploads"].as_u64(), first.body["bytes"].as_u64()),
        (Some(2), Some(300))
    );
    let next = first.body["next"].as_str().unwrap();
    let second = usage(&m.app, "dee", &format!("limit=2&cursor={next}")).await;
    assert_eq!(bytes(&second), [300]);
    assert_eq!(second.body["next"], Value::Null);
    // A range: landed at 08:00:20 and after, before 08:00:30.
    let ranged = usage(
        &m.app,
        "dee",
        "since=2027-01-15T08:00:20Z&until=2027-01-15T09:00:30%2B01:00",
    )
    .await;
    assert_eq!(bytes(&ranged), [200]);
    assert_eq!(ranged.body["since"], "2027-01-15T08:00:20Z");
    assert_eq!(ranged.body["until"], "2027-01-15T08:00:30Z");
    // Cursors this API did not give out, and bad parameters: 400.
    for query in [
        "cursor=AAAA",
        "cursor=not%20base64",
        "limit=0",
        "since=noon",
    ] {
        let r = usage(&m.app, "dee", query).await;
        assert_eq!(r.status, 400, "{query}: {}", r.raw);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
}

/// The `month` and `windows` of a usage answer, as (uploads, bytes).
fn totals(r: &Reply) -> (Value, Vec<(String, String, u64, u64)>) {
    let windows = r.body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["policy"].as_str().unwrap().to_owned(),
                w["window"].as_str().unwrap().to_owned(),
                w["uploads"].as_u64().unwrap(),
                w["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    (r.body["month"].clone(), windows)
}

fn windows(v: &[(&str, &str, u64, u64)]) -> Vec<(String, String, u64, u64)> {
    v.iter()
        .map(|(p, w, n, b)| ((*p).to_owned(), (*w).to_owned(), *n, *b))
        .collect()
}

#[tokio::test]
async fn usage_totals_the_month_and_each_user_limits_window() {
    // T0 is 2027-01-15T08:00:00Z. One limit of each algorithm on the user,
    // and one on the address, which has no usage of its own.
    let m = upload_mode(
        "uploads=user:10/3h;volume=user:10MiB/1d:fixed;burst=user:20/2d:gcra;perip=ip:100/1m",
    );
    let steps = [
        // (advance before the grant, bytes): landed 10 s after each grant.
        (Duration::ZERO, 1000),                       // 01-15 08:00:10
        (Duration::from_secs(2 * 3600), 2000),        // 01-15 10:00:20
        (Duration::from_secs(15 * 3600), 4000),       // 01-16 01:00:30
        (Duration::from_secs(2 * 3600 + 1770), 8000), // 01-16 03:30:10
    ];
    for (advance, size) in steps {
        m.clock.advance(advance);
        let up = upload(&m.app, "eve", size).await;
        assert_eq!(up.status, 200, "{}", up.raw);
        m.clock.advance(Duration::from_secs(10));
        assert_eq!(m.settle(&up, size).await, Verdict::Accepted { late: false });
    }
    // An upload granted and never used counts nowhere here.
    assert_eq!(upload(&m.app, "eve", 99).await.status, 200);
    // Someone else's counts only for them.
    let other = upload(&m.app, "fay", 16).await;
    m.clock.advance(Duration::from_secs(1));
    assert_eq!(
        m.settle(&other, 16).await,
        Verdict::Accepted { late: false }
    );

    // 01-16 05:00:10: the 3 h window holds 03:30:10 only, the day since
    // midnight two uploads, the 2 d window and the month all four.
    m.clock.advance(Duration::from_secs(5400 - 1));
    let u = usage(&m.app, "eve", "limit=1").await;
    assert_eq!(u.status, 200, "{}", u.raw);
    let (month, w) = totals(&u);
    assert_eq!(
        month,
        serde_json::json!({"start": "2027-01-01T00:00:00Z", "uploads": 4, "bytes": 15000})
    );
    assert_eq!(
        w,
        windows(&[
            ("uploads", "3h", 1, 8000),
            ("volume", "1d", 2, 12000),
            ("burst", "2d", 4, 15000),
        ])
    );
    // The page is still one record, and its own totals are the page's.
    assert_eq!(
        (u.body["uploads"].as_u64(), u.body["bytes"].as_u64()),
        (Some(1), Some(1000))
    );
    // The totals do not depend on the page asked for.
    let next = u.body["next"].as_str().unwrap();
    let later = usage(&m.app, "eve", &format!("limit=1&cursor={next}")).await;
    assert_eq!(totals(&later), (month.clone(), w.clone()));
    let ranged = usage(&m.app, "eve", "since=2027-01-16T03:00:00Z").await;
    assert_eq!(ranged.body["uploads"], 1);
    assert_eq!(totals(&ranged), (month.clone(), w.clone()));
    let empty = usage(
        &m.app,
        "eve",
        "since=2027-01-16T03:00:00Z&until=2027-01-16T03:00:00Z",
    )
    .await;
    assert_eq!(empty.body["records"], serde_json::json!([]));
    assert_eq!(totals(&empty), (month, w));
    let fay = usage(&m.app, "fay", "").await;
    assert_eq!(
        totals(&fay),
        (
            serde_json::json!({"start": "2027-01-01T00:00:00Z", "uploads": 1, "bytes": 16}),
            windows(&[
                ("uploads", "3h", 1, 16),
                ("volume", "1d", 1, 16),
                ("burst", "2d", 1, 16),
            ])
        )
    );

    // Exactly 3 h after 03:30:10 that upload has left the sliding window;
    // a millisecond before, it had not.
    m.clock
        .advance(Duration::from_secs(5400 - 1) + Duration::from_millis(999));
    assert_eq!(
        totals(&usage(&m.app, "eve", "").await).1[0],
        windows(&[("uploads", "3h", 1, 8000)])[0]
    );
    m.clock.advance(Duration::from_millis(1));
    assert_eq!(
        totals(&usage(&m.app, "eve", "").await).1[0],
        windows(&[("uploads", "3h", 0, 0)])[0]
    );

    // A new month starts from nothing; the 2 d window reaches back only to
    // 01-30.
    m.clock
        .advance(Duration::from_secs(15 * 86_400 + 18 * 3600));
    let feb = usage(&m.app, "eve", "").await;
    assert_eq!(
        totals(&feb),
        (
            serde_json::json!({"start": "2027-02-01T00:00:00Z", "uploads": 0, "bytes": 0}),
            windows(&[
                ("uploads", "3h", 0, 0),
                ("volume", "1d", 0, 0),
                ("burst", "2d", 0, 0),
            ])
        )
    );
    // Nobody's records, nobody's totals; reading consumed nothing.
    let nobody = usage(&m.app, "gus", "").await;
    assert_eq!(nobody.body["month"]["uploads"], 0);
    assert_eq!(remaining(&quota(&m.app, "gus").await), 10);
}

/// A caller's windows are their tier's limits on the user; the month
/// counts every settled upload, whatever the tier it was granted under.
#[tokio::test]
async fn usage_totals_follow_the_callers_tier() {
    let key = crate::jwt::TestKey::ed("k1");
    let jwks = crate::jwt::Jwks::serve(&[&key]).await;
    let m = upload_mode_with(&[
        ("UPLOADGATE_IDENTITY", "jwt"),
        ("UPLOADGATE_JWT_ISSUER", "https://issuer.example.com/pool-1"),
        ("UPLOADGATE_JWT_AUDIENCE", "app-client-1"),
        ("UPLOADGATE_JWKS_URL", jwks.url.as_str()),
        ("UPLOADGATE_LIMITS", "uploads=user:5/3h;burst=ip:100/1m"),
        (
            "UPLOADGATE_TIERS",
            "pro=uploads=user:50/1h;volume=user:1GiB/1mo:fixed",
        ),
        ("UPLOADGATE_TIER_CLAIM", "plan"),
    ]);
    let token = |plan: Option<&str>| {
        let mut c = crate::jwt::claims("dana");
        // Valid for the 2 h this test spans.
        c["exp"] = serde_json::json!(T0.as_millis() / 1000 + 4 * 3600);
        if let Some(p) = plan {
            c["plan"] = serde_json::json!(p);
        }
        key.sign(&c)
    };
    let (free, pro) = (token(None), token(Some("pro")));
    let usage_as = |token: &str| {
        let req = Request::get("/v1/usage")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        send(&m.app, with_peer(req, "192.0.2.10"))
    };
    // One upload granted on the free policy, then, 2 h later, one on pro.
    let a = send(&m.app, crate::jwt::token_req(&free, &pdf(100))).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(m.settle(&a, 100).await, Verdict::Accepted { late: false });
    m.clock.advance(Duration::from_secs(2 * 3600));
    let b = send(&m.app, crate::jwt::token_req(&pro, &pdf(200))).await;
    assert_eq!(b.status, 200, "{}", b.raw);
    assert_eq!(m.settle(&b, 200).await, Verdict::Accepted { late: false });

    let month = serde_json::json!({"start": "2027-01-01T00:00:00Z", "uploads": 2, "bytes": 300});
    // As pro: its 1 h window holds only the second; its month volume both.
    let as_pro = usage_as(&pro).await;
    assert_eq!(as_pro.status, 200, "{}", as_pro.raw);
    assert_eq!(
        totals(&as_pro),
        (
            month.clone(),
            windows(&[("uploads", "1h", 1, 200), ("volume", "1mo", 2, 300)])
        )
    );
    // As free: the 3 h window holds both; the ip limit is not the user's.
    let as_free = usage_as(&free).await;
    assert_eq!(
        totals(&as_free),
        (month, windows(&[("uploads", "3h", 2, 300)]))
    );
    // The records say which tier each was granted under.
    let tiers: Vec<Value> = as_free.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tier"].clone())
        .collect();
    assert_eq!(tiers, [Value::Null, serde_json::json!("pro")]);
}

#[tokio::test]
async fn too_many_pending_uploads_are_a_429_of_their_own() {
    let m = upload_mode("uploads=user:1000/1d");
    let mut first = None;
    for _ in 0..256 {
        let r = upload(&m.app, "eve", 1).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        first.get_or_insert(r);
    }
    m.clock.advance(Duration::from_secs(100));
    let full = upload(&m.app, "eve", 1).await;
    assert_eq!(full.status, 429, "{}", full.raw);
    assert_eq!(
        full.body["type"],
        "https://uploadgate.dev/problems/pending-uploads"
    );
    assert_eq!(full.body["maxPending"], 256);
    // Until the first URL is handed back at the latest: its expiry plus
    // the grace, from now.
    let retry = (TTL + GRACE).as_secs() - 100;
    assert_eq!(full.header("retry-after"), Some(retry.to_string().as_str()));
    assert_eq!(full.body["retryAfter"], retry);
    assert!(
        full.body["detail"].as_str().unwrap().contains("256"),
        "{}",
        full.raw
    );
    let spec = crate::openapi::spec();
    crate::openapi::conforms(&spec, "PendingUploadsProblem", &full.body);
    // Nothing was charged by the denial.
    assert_eq!(remaining(&quota(&m.app, "eve").await), 1000 - 256);
    // One landing frees room.
    let first = first.unwrap();
    assert_eq!(m.settle(&first, 1).await, Verdict::Accepted { late: false });
    assert_eq!(upload(&m.app, "eve", 1).await.status, 200);
    // Another user is not held back.
    assert_eq!(upload(&m.app, "fay", 1).await.status, 200);
}

#[tokio::test]
async fn a_check_without_an_upload_reserves_nothing() {
    let m = upload_mode("uploads=user:2/1d");
    let check = |body: &'static str| {
        let req = Request::post("/upload-check")
            .header("x-user-id", "gus")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        send(&m.app, with_peer(req, "192.0.2.10"))
    };
    let bare = check("{}").await;
    assert_eq!(bare.status, 200, "{}", bare.raw);
    let declared = check(r#"{"contentType":"application/pdf","size":5}"#).await;
    assert_eq!(declared.status, 200, "{}", declared.raw);
    m.clock.advance(TTL + GRACE);
    // The declared upload's URL came back; the bare check's charge stays.
    assert_eq!(remaining(&quota(&m.app, "gus").await), 1);
}

/// Grant mode is what it was: nothing comes back, nothing is reserved; and
/// every object key carries its grant time (a UUIDv7 of the clock's now).
#[tokio::test]
async fn grant_mode_charges_for_good_and_keys_tell_their_time() {
    let (app, clock) = app(&[("UPLOADGATE_LIMITS", "uploads=user:2/1d")]);
    let up = upload(&app, "hal", 10).await;
    assert_eq!(remaining(&up), 1);
    let key = up.body["key"].as_str().unwrap();
    let unique = key.split('/').nth(2).unwrap();
    let uuid = uuid::Uuid::parse_str(unique).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
    assert_eq!(Timestamp(secs * 1000 + u64::from(nanos) / 1_000_000), T0);
    clock.advance(TTL + GRACE + Duration::from_secs(60));
    assert_eq!(remaining(&quota(&app, "hal").await), 1);
    // This router keeps no usage ledger.
    let u = usage(&app, "hal", "").await;
    assert_eq!(u.status, 404, "{}", u.raw);
    assert_eq!(
        u.body["type"],
        "https://uploadgate.dev/problems/usage-not-recorded"
    );

    // Nor does one that has a ledger but charges on grant: nothing is
    // added to it, so totals of nothing would mislead.
    let cfg = config(&[("UPLOADGATE_LIMITS", "uploads=user:2/1d")]);
    let p = presigner(&cfg);
    let clock: Arc<dyn Clock> = Arc::new(FakeClock::new(T0));
    let with_ledger = uploadgate_http::router(
        AppState::new(cfg.gate, MemoryStore::new(), clock, p)
            .with_usage(Arc::new(MemoryLedger::new())),
    );
    let u = usage(&with_ledger, "hal", "").await;
    assert_eq!(u.status, 404, "{}", u.raw);
    assert_eq!(u.header("content-type"), Some("application/problem+json"));
    assert!(
        u.body["detail"]
            .as_str()
            .unwrap()
            .contains("UPLOADGATE_CHARGE=grant"),
        "{}",
        u.raw
    );
}
