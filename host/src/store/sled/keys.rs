//! Key layout. Every index key is derived from the case alone, so the keys to remove on an
//! update are the old case's and the keys to add are the new case's.

use crate::assessment::{Fact, Measure};
use crate::model::{Case, CaseStatus, Millis, TimerKind};
use crate::store::{next_timer, timer_kind_from_name, timer_kind_name};

/// Index prefixes in the `idx` tree.
pub const BY_DISTRICT_STATUS: u8 = b'D';
/// Index by district and creation time.
pub const BY_DISTRICT: u8 = b'd';
/// Index by handling unit (lead and co-handlers).
pub const BY_UNIT: u8 = b'U';
/// Index by timer due time.
pub const BY_DUE: u8 = b'T';
/// Index by caller key, creation time, category (newest-first scans stay short).
pub const BY_CALLER: u8 = b'K';
/// Schema 1's index by creation time. Schema 2 has none (a city-wide listing walks the
/// cases themselves, whose ids are given in creation order); the upgrade removes it.
pub const SCHEMA_1_BY_CREATED: u8 = b'C';
/// The tag of a city-wide listing's cursors (which name a case, not an index entry).
pub const ALL_CASES: u8 = b'*';

const SEP: u8 = 0;

/// A time as bytes that sort in time order (negative times included).
pub fn time_key(t: Millis) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time encoded by [`time_key`].
pub fn time_from_key(b: &[u8]) -> Millis {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

/// Builds `prefix ‖ part ‖ 0 ‖ part ‖ 0 ...`.
pub fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    k.push(prefix);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        k.extend_from_slice(p);
    }
    k
}

/// A prefix for scanning: `prefix ‖ part ‖ 0 ... ‖ 0`.
pub fn prefix(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(prefix, parts);
    if !parts.is_empty() {
        k.push(SEP);
    }
    k
}

/// The case id at the end of an index key.
pub fn id_at_end(k: &[u8]) -> &[u8] {
    let start = k
        .iter()
        .rposition(|b| *b == SEP)
        .map(|i| i + 1)
        .unwrap_or(1);
    &k[start..]
}

/// The timer index key: due time, case id, timer kind.
pub fn timer_key(due_at: Millis, id: &str, kind: TimerKind) -> Vec<u8> {
    key(
        BY_DUE,
        &[
            &time_key(due_at),
            id.as_bytes(),
            timer_kind_name(kind).as_bytes(),
        ],
    )
}

/// Parses a timer index key.
pub fn parse_timer_key(k: &[u8]) -> Option<(Millis, String, TimerKind)> {
    if k.len() < 10 || k[0] != BY_DUE {
        return None;
    }
    let due = time_from_key(&k[1..9]);
    let rest = std::str::from_utf8(&k[10..]).ok()?;
    let (id, kind) = rest.rsplit_once('\0')?;
    Some((due, id.to_owned(), timer_kind_from_name(kind)?))
}

/// Event key: case id ‖ 0 ‖ seq.
pub fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(SEP);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of all of a case's events.
pub fn events_prefix(id: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(SEP);
    k
}

/// The district-and-status scan prefix.
pub fn district_status_prefix(district: &str, status: CaseStatus) -> Vec<u8> {
    prefix(
        BY_DISTRICT_STATUS,
        &[district.as_bytes(), status.as_str().as_bytes()],
    )
}

/// Every index key of `case`.
pub fn index_keys(c: &Case) -> Vec<Vec<u8>> {
    let id = c.id.as_bytes();
    let created = time_key(c.created_at);
    let mut keys = vec![
        key(
            BY_DISTRICT_STATUS,
            &[
                c.district.as_bytes(),
                c.status.as_str().as_bytes(),
                &created,
                id,
            ],
        ),
        key(BY_DISTRICT, &[c.district.as_bytes(), &created, id]),
        key(
            BY_CALLER,
            &[c.caller_key.as_bytes(), &created, c.category.as_bytes(), id],
        ),
    ];
    for unit in c.handler.iter().chain(c.co_handlers.iter()) {
        keys.push(key(BY_UNIT, &[unit.as_bytes(), id]));
    }
    if let Some(t) = next_timer(c) {
        keys.push(timer_key(t.due_at, &c.id, t.kind));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// What a fact key stands for when it is not its case's still-owed deadline.
const OPEN: &[u8] = b"open";

/// A fact's key in the facts space: district ‖ 0 ‖ time ‖ unit ‖ 0 ‖ measure ‖ 0 ‖ case ‖
/// 0 ‖ event (or `open`). A district's period is one range; the time is fixed-width, so
/// no separator follows it.
pub fn fact_key(f: &Fact) -> Vec<u8> {
    let seq = f.seq.map(|s| s.to_string());
    let mut k = fact_bound(&f.district, f.at);
    let parts: [&[u8]; 4] = [
        f.unit.as_bytes(),
        f.measure.as_str().as_bytes(),
        f.case.as_bytes(),
        seq.as_deref().map_or(OPEN, str::as_bytes),
    ];
    k.extend_from_slice(&parts.join(&SEP));
    k
}

/// The start of `district`'s facts at time `at` (a range of them is `bound(from)..bound(to)`).
pub fn fact_bound(district: &str, at: Millis) -> Vec<u8> {
    let mut k = district.as_bytes().to_vec();
    k.push(SEP);
    k.extend_from_slice(&time_key(at));
    k
}

/// A fact key's parts after the district: its time, unit, measure, and whether it is a
/// deadline still owed.
pub fn parse_fact_key(k: &[u8]) -> Option<(Millis, &str, Measure, &str, bool)> {
    let start = k.iter().position(|b| *b == SEP)? + 1;
    let at = time_from_key(k.get(start..start + 8)?);
    let rest = std::str::from_utf8(&k[start + 8..]).ok()?;
    let mut parts = rest.split('\0');
    let unit = parts.next()?;
    let measure = Measure::parse(parts.next()?)?;
    let case = parts.next()?;
    let open = parts.next()?.as_bytes() == OPEN;
    Some((at, unit, measure, case, open))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_in_time_order() {
        let times = [-5_000i64, -1, 0, 1, 1_796_000_400_000, i64::MAX];
        for w in times.windows(2) {
            assert!(time_key(w[0]) < time_key(w[1]));
            assert_eq!(time_from_key(&time_key(w[0])), w[0]);
        }
    }

    #[test]
    fn timer_keys_round_trip() {
        let k = timer_key(1234, "c-0000000007", TimerKind::FirstContact);
        assert_eq!(
            parse_timer_key(&k),
            Some((1234, "c-0000000007".into(), TimerKind::FirstContact))
        );
        assert_eq!(
            id_at_end(&key(BY_DISTRICT, &[b"jiyang", &time_key(5), b"c-1"])),
            b"c-1"
        );
    }
}
