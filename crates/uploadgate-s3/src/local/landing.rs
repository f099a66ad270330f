//! What the local bucket tells the gate about the objects it stores, and
//! how the gate marks the ones it refuses: the embedded bucket's side of
//! settlement (`UPLOADGATE_CHARGE=upload`, `docs/design/settlement.md`).
//!
//! * **Landings.** After a `PUT` has stored its object (the exclusive
//!   create won, bytes and metadata are in place), the bucket hands a
//!   [`Landed`] to its [`Landings`], if one is set: the in-process stand-in
//!   for S3's event notification. It is called on the `PUT`'s task and must
//!   not block; the `PUT` is answered whatever the listener does.
//! * **Quarantine.** [`LocalBucket`] is a [`Quarantine`] port: it marks an
//!   object in its metadata, and shows the mark as S3 shows an object tag:
//!   the tag `uploadgate-quarantine=<reason>` (`GetObjectTagging`), the
//!   tag count on `GET` (`x-amz-tagging-count: 1`), and, since S3's `HEAD`
//!   shows no tags, the metadata header `x-amz-meta-uploadgate-quarantine`
//!   on `GET` and `HEAD` alike. The object itself stays, for inspection.

use std::sync::Arc;

use uploadgate_core::Timestamp;
use uploadgate_core::settle::{Landed, PortError, Quarantine, QuarantineReason};

use super::{LocalBucket, Meta};

/// The tag (and metadata) key that marks a quarantined object.
pub const QUARANTINE_TAG: &str = "uploadgate-quarantine";

/// Where the local bucket reports the objects it stores.
pub trait Landings: Send + Sync + 'static {
    /// The time an object is created at (the bucket keeps no clock of its
    /// own: the gate's, so settlement and decisions agree on "now").
    fn now(&self) -> Timestamp;

    /// One object was stored. Called once per successful `PUT`, on its
    /// task: must return at once (spawn the work).
    fn landed(&self, landed: Landed);
}

impl LocalBucket {
    /// Reports every object stored from now on to `landings`. The first
    /// listener set stays; returns whether this one was set.
    pub fn set_landings(&self, landings: Arc<dyn Landings>) -> bool {
        self.inner.landings.set(landings).is_ok()
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.inner.bucket
    }

    /// Tells the listener, if any, that `key` was stored.
    pub(super) fn report(
        &self,
        key: &str,
        size: u64,
        content_type: Option<String>,
        checksum: Option<[u8; 32]>,
    ) {
        if let Some(l) = self.inner.landings.get() {
            l.landed(Landed {
                bucket: self.inner.bucket.clone(),
                key: key.to_owned(),
                size,
                content_type,
                checksum_sha256: checksum,
                created_at: l.now(),
            });
        }
    }

    /// Marks `key`'s metadata with `reason`, under the commit lock (so a
    /// reader sees the object with or without the mark, never half).
    fn mark(&self, key: &str, reason: &str) -> Result<(), std::io::Error> {
        let (_, meta_path) = self
            .paths(key)
            .map_err(|_| std::io::Error::other("invalid key"))?;
        let _commit = self.commit_lock();
        let raw = std::fs::read(&meta_path)?;
        let mut meta: Meta = serde_json::from_slice(&raw).map_err(std::io::Error::other)?;
        meta.quarantine = Some(reason.to_owned());
        let mut tmp = tempfile::NamedTempFile::new_in(&self.inner.tmp)?;
        serde_json::to_writer(&mut tmp, &meta).map_err(std::io::Error::other)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&meta_path).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Quarantine for LocalBucket {
    async fn quarantine(
        &self,
        bucket: &str,
        key: &str,
        reason: &QuarantineReason,
    ) -> Result<(), PortError> {
        if bucket != self.inner.bucket {
            return Err(PortError {
                what: format!("quarantine: no bucket {bucket} here"),
                transient: false,
                source: None,
            });
        }
        let this = self.clone();
        let (key, reason) = (key.to_owned(), reason.as_str());
        let done = tokio::task::spawn_blocking(move || this.mark(&key, reason)).await;
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PortError {
                what: "quarantine: cannot mark the object's metadata".into(),
                transient: e.kind() != std::io::ErrorKind::NotFound,
                source: Some(Box::new(e)),
            }),
            Err(e) => Err(PortError {
                what: "quarantine: the marking task failed".into(),
                transient: true,
                source: Some(Box::new(e)),
            }),
        }
    }
}

/// The metadata headers (`x-amz-meta-*`) of an object with `meta`.
pub(super) fn metadata(meta: Option<&Meta>) -> Option<s3s::dto::Metadata> {
    let reason = meta?.quarantine.as_ref()?;
    Some(s3s::dto::Metadata::from([(
        QUARANTINE_TAG.to_owned(),
        reason.clone(),
    )]))
}

/// The tags of an object with `meta`.
pub(super) fn tags(meta: Option<&Meta>) -> Vec<s3s::dto::Tag> {
    meta.and_then(|m| m.quarantine.as_ref())
        .map(|reason| s3s::dto::Tag {
            key: Some(QUARANTINE_TAG.to_owned()),
            value: Some(reason.clone()),
        })
        .into_iter()
        .collect()
}
