//! The reservations section of format 3 (see the layout in the parent
//! module).

use std::collections::BTreeMap;

use super::{CodecError, Reader, put};
use crate::clock::Timestamp;
use crate::reservation::{Reservation, ReservationStatus};

const STATUS_MASK: u8 = 0b11;
const HAS_CHECKSUM: u8 = 4;
const HAS_TIER: u8 = 8;

fn put_text(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends the count and every reservation.
pub(super) fn encode(out: &mut Vec<u8>, reservations: &BTreeMap<[u8; 16], Reservation>) {
    put(out, reservations.len() as u64);
    for (unique, r) in reservations {
        out.extend_from_slice(unique);
        put(out, r.granted_at.as_millis());
        put(out, r.expires_at.as_millis());
        put(out, r.size);
        put_text(out, &r.content_type);
        let status = match r.status {
            ReservationStatus::Pending => 0,
            ReservationStatus::Settled => 1,
            ReservationStatus::Rejected => 2,
        };
        let flags = status
            | if r.checksum.is_some() {
                HAS_CHECKSUM
            } else {
                0
            }
            | if r.tier.is_some() { HAS_TIER } else { 0 };
        out.push(flags);
        if let Some(sum) = &r.checksum {
            out.extend_from_slice(sum);
        }
        if let Some(tier) = &r.tier {
            put_text(out, tier);
        }
        put(out, r.charged.len() as u64);
        for (name, cost) in &r.charged {
            put_text(out, name);
            put(out, *cost);
        }
    }
}

/// Reads what [`encode`] wrote.
pub(super) fn decode(r: &mut Reader<'_>) -> Result<BTreeMap<[u8; 16], Reservation>, CodecError> {
    let count = r.varint()?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let unique: [u8; 16] = r.array()?;
        let granted_at = Timestamp(r.varint()?);
        let expires_at = Timestamp(r.varint()?);
        let size = r.varint()?;
        let content_type = r.text("content type is not UTF-8")?;
        let flags = r.byte()?;
        if flags & !(STATUS_MASK | HAS_CHECKSUM | HAS_TIER) != 0 {
            return Err(CodecError::Malformed("unknown reservation flags"));
        }
        let status = match flags & STATUS_MASK {
            0 => ReservationStatus::Pending,
            1 => ReservationStatus::Settled,
            2 => ReservationStatus::Rejected,
            _ => return Err(CodecError::Malformed("unknown reservation status")),
        };
        let checksum = match flags & HAS_CHECKSUM {
            0 => None,
            _ => Some(r.array()?),
        };
        let tier = match flags & HAS_TIER {
            0 => None,
            _ => Some(r.text("tier is not UTF-8")?),
        };
        let n = r.varint()?;
        // Each entry takes at least two bytes: refuse a count the input
        // cannot hold before allocating for it.
        if n > (r.remaining() / 2) as u64 {
            return Err(CodecError::Truncated);
        }
        let mut charged = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let name = r.text("limit name is not UTF-8")?;
            charged.push((name, r.varint()?));
        }
        let reservation = Reservation {
            granted_at,
            expires_at,
            size,
            content_type,
            checksum,
            tier,
            charged,
            status,
        };
        if out.insert(unique, reservation).is_some() {
            return Err(CodecError::Malformed("a reservation appears twice"));
        }
    }
    Ok(out)
}
