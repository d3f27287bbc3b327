//! The record of a write in progress (see [`Pending`]), stored compactly: it is written
//! and removed by every write, so it is as much of sled's log as the write itself.

use serde::Deserialize;

use crate::store::StoreError;

/// The first byte of a record in this format (records of older builds are JSON objects).
const TAG: u8 = 0xB1;

/// A write to one case, made as single sled operations instead of one batch, recorded
/// before its first operation and removed after its last.
///
/// sled applies a batch under a lock that also stops every reader: with a batch per write,
/// intake's repeat checks and the timer sweep's reads waited on every other write. So a
/// write is made as single operations in an order readers tolerate: the events and new
/// index entries first, then the case (which counts the events and from which every index
/// entry is checked), then the old index entries are removed. A crash in between leaves
/// this record, and opening the store settles it: if the case was written, the old entries
/// are removed; if not, what was added is. sled recovers a prefix of its operations, so the
/// record is there whenever any of the write's operations is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The case's version before the write.
    pub from: u64,
    /// Keys of the data tree the write adds before the case (its events and new index
    /// entries).
    pub added: Vec<Vec<u8>>,
    /// Keys it removes after the case (old index entries).
    pub removed: Vec<Vec<u8>>,
    /// Whether the write removes the case (retention): then `removed` holds the case and
    /// everything of it, and settling always finishes the removal, which was decided
    /// before its first operation.
    pub removes: bool,
}

/// How builds before the compact format stored it: JSON, keys in hex.
#[derive(Deserialize)]
struct Json {
    from: u64,
    added: Vec<String>,
    removed: Vec<String>,
    #[serde(default)]
    removes: bool,
}

impl Pending {
    /// `TAG`, `from` (8 bytes), `removes` (1), the counts of added and removed keys (4 each),
    /// then each key as its length (4) and bytes — all big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let keys = self.added.iter().chain(&self.removed);
        let mut out = Vec::with_capacity(18 + keys.clone().map(|k| 4 + k.len()).sum::<usize>());
        out.push(TAG);
        out.extend_from_slice(&self.from.to_be_bytes());
        out.push(u8::from(self.removes));
        out.extend_from_slice(&(self.added.len() as u32).to_be_bytes());
        out.extend_from_slice(&(self.removed.len() as u32).to_be_bytes());
        for k in keys {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k);
        }
        out
    }

    /// A record as [`Pending::encode`] or an older build wrote it; `key` names it in errors.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |message: &str| StoreError::Corrupt {
            key: hex::encode(key),
            message: format!("a pending-write record {message}"),
        };
        if bytes.first() != Some(&TAG) {
            let j: Json = crate::store::decode(key, bytes)?;
            let unhex = |v: Vec<String>| -> Result<Vec<Vec<u8>>, StoreError> {
                v.iter()
                    .map(|k| hex::decode(k).map_err(|_| corrupt("holds a key that is not hex")))
                    .collect()
            };
            return Ok(Self {
                from: j.from,
                added: unhex(j.added)?,
                removed: unhex(j.removed)?,
                removes: j.removes,
            });
        }
        let mut at = 1usize;
        let mut take = |n: usize| -> Result<&[u8], StoreError> {
            let part = bytes
                .get(at..at + n)
                .ok_or_else(|| corrupt("is cut short"))?;
            at += n;
            Ok(part)
        };
        let u32_of = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize;
        let from = u64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
        let removes = take(1)?[0] == 1;
        let added = u32_of(take(4)?);
        let removed = u32_of(take(4)?);
        let mut keys = Vec::with_capacity((added + removed).min(bytes.len()));
        for _ in 0..added + removed {
            let len = u32_of(take(4)?);
            keys.push(take(len)?.to_vec());
        }
        if at != bytes.len() {
            return Err(corrupt("has bytes after its last key"));
        }
        let removed = keys.split_off(added);
        Ok(Self {
            from,
            added: keys,
            removed,
            removes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_an_older_builds_json_still_reads() {
        let p = Pending {
            from: 7,
            added: vec![b"e\x00a".to_vec(), vec![]],
            removed: vec![vec![0xff; 300]],
            removes: true,
        };
        let bytes = p.encode();
        assert_eq!(Pending::decode(b"k", &bytes).unwrap(), p);
        let json = format!(
            "{{\"from\":7,\"added\":[\"{}\",\"\"],\"removed\":[\"{}\"]}}",
            hex::encode(&p.added[0]),
            hex::encode(&p.removed[0])
        );
        assert_eq!(
            Pending::decode(b"k", json.as_bytes()).unwrap(),
            Pending {
                removes: false,
                ..p.clone()
            }
        );
        for cut in [1, 9, 20, bytes.len() - 1] {
            assert!(
                Pending::decode(b"k", &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Pending::decode(b"k", &longer).is_err());
    }
}
